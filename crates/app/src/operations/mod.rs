//! Operations: what a client asked to be done to machines now (assess, install, roll back), each
//! one row that clients poll and that ends when its jobs do.
//!
//! This module owns starting them ([`assess`], [`install`], [`rollback`]), the `Idempotency-Key`
//! rule they share ([`idempotency`]), the one install, rollback or reboot a machine runs at a time
//! ([`disruptive`]), reading one, long-polled until it changes ([`waiting`]), and listing and
//! canceling them ([`control`]); which machines its jobs cannot reach, and when those jobs
//! expire ([`reach`]).

pub mod assess;
pub mod control;
pub mod disruptive;
pub mod idempotency;
pub mod install;
pub mod reach;
pub mod rollback;
pub mod waiting;

pub use idempotency::Caller;
pub use waiting::{get, MAX_WAIT_SECS};

/// At most this many machine ids listed in one selector (a request body's worth; how many
/// machines a selector may name is the setting `max_selected`).
pub const MAX_IDS: usize = 100_000;
/// Per-machine results listed in an operation view.
pub const MAX_RESULTS: i64 = 1_000;
