//! The rollout dispatcher as a duty: one pass every `HOTPATCH_DISPATCH_INTERVAL_MS`, by one
//! replica (see [`crate::rollouts::dispatcher`] for what a pass does).

pub use crate::rollouts::dispatcher::{tick, Pass};
