//! Pure planning: where each machine stands in the baseline/hotpatch cycle, when its
//! maintenance windows open in its own time zone, availability-first rollout plans, and how a
//! rollout progresses on its machines' results.
//!
//! No I/O, no async, no clock: `now` is always an argument.

pub mod cycle;
pub mod rollout;
pub mod windows;
