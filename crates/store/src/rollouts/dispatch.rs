//! The dispatcher's rows: what a tick reads ([`load`], a [`Snapshot`]) and the statements that
//! apply what it decided ([`apply_results`] … [`mark_queued`]). No rule is decided here: the
//! decisions are `hotpatch_scheduler::rollout::progress`'s, and each statement only guards its
//! writes with the states the decision was made from, so the operator's pause, resume and cancel
//! (which start at the rollout's row, locked first by [`lock_rollouts`]) win or lose cleanly
//! against a tick. Meant for one leader per tick: the caller holds the advisory lock and the
//! transaction.

mod apply;
mod load;

pub use apply::{
    apply_health, apply_results, cancel_queued_job, halt, mark_failed, mark_queued, open_batches, reschedule,
    succeed_batches, succeed_rollouts,
};
pub use load::{load, lock_rollouts};
