//! Rollout progression as a state machine (DESIGN §1 "Orchestration"): from the rows of the
//! unfinished rollouts, the ended install jobs, the agents' health reports and `now`, which
//! machines, batches and rollouts move, which batches open and which install jobs start. The
//! rollout loop advances on results, not on the plan's times: a batch is done when its machines
//! are, and machines install in their own windows, never before the one they were given.
//!
//! The rules [`tick`] follows, in this order, each reading what the earlier ones decided:
//! 1. **Job results** ([`sync_job_results`]). A machine `queued` whose job ended takes its
//!    outcome: `succeeded`, or `failed` with the job's error (`job failed` without one). A
//!    canceled job sends the machine back to `pending` (error: the job's, or `job canceled`); it
//!    keeps the job's id, which keeps it from being enqueued again until rule 6 moves it.
//! 2. **Health** ([`record_health`]). A succeeded machine of an open or halted batch takes the
//!    health of its agent's latest report when that came after its job ended, and follows later
//!    reports until its batch is decided: one that recovers counts as healthy again.
//! 3. **Batch verdicts** ([`judge_batches`], [`batch_verdict`]), for the open batches of running
//!    rollouts only. With `bad` the failed and unhealthy machines of `total`, a batch with
//!    `bad × 100 > threshold × total` halts, and its rollout with it, with the reason
//!    `"{bad} of {total} machines failed or are unhealthy in batch {index} (region {region}, zone
//!    {zone}): over the {threshold}% threshold"` (no zone part without a zone); several batches
//!    of one rollout halting together give the rollout their reasons joined with `"; "`.
//!    Otherwise a batch succeeds when no machine waits (pending, queued, or installed without
//!    health yet), its failed and unhealthy machines staying as they are: exactly at the
//!    threshold it succeeds.
//! 4. **Rollouts that succeed** (same phase): a rollout still running with no batch pending,
//!    open or halted.
//! 5. **Batches that open** ([`open_batches`]). In a running rollout, the current wave is the
//!    lowest wave with a batch pending, open or halted; in it, each region's first such batch
//!    (by index) opens if it is pending. Regions of a wave go in parallel, a region's batches
//!    one after the other, and the next wave when every batch of this one succeeded; a halted
//!    batch holds its region and the next wave. A rollout halted (in this tick too), paused or
//!    canceled opens nothing.
//! 6. **Missed windows** ([`missed_windows`]). Up to `limit` machines whose window ended
//!    (`window_end <= now`) before they installed, soonest-ended first: `queued` with a job no
//!    agent claimed (whatever the rollout's state), or `pending` in an open batch of a running
//!    rollout. The queued job is canceled, and the machine takes, in one step however far the
//!    clock moved, the **window in progress at `now`** when at least an hour of it (or half, for
//!    a shorter window) is left, else its schedule's **first window starting at or after
//!    `now`**, with one more attempt; or it fails with
//!    [`NO_WINDOW_LEFT`] when the schedule has none ([`next_window_after_miss`],
//!    [`moved`]: the caller resolves the machine's schedule).
//! 7. **Installs that start** ([`due_installs`]). Up to `limit` machines, soonest-closing window
//!    first: `pending` without a job, in an open batch of a running rollout (as decided in this
//!    tick: a batch or rollout halted now enqueues nothing), inside their window
//!    (`window_start <= now < window_end`), not busy with another active disruptive job. A
//!    machine due in two rollouts goes for the latest one (uuid v7 ids: the greatest) and only
//!    once; the other waits for that install to end. The job's `maximum_duration` is what is
//!    left of the window, at least a minute ([`maximum_duration_secs`]).
//!
//! # What the store loads ([`Snapshot`])
//! In the tick's transaction, after locking the unfinished rollouts (so the operator's pause,
//! resume and cancel wait for the tick): the running, paused and halted rollouts with all their
//! batches, and per open batch its machines counted by state ([`Tally`]); the machines `queued`
//! whose job ended ([`EndedJob`]); for succeeded machines of open or halted batches, and
//! queued ones whose job succeeded, the agent's latest report with the job's end
//! ([`HealthReport`]); and the [`Candidate`]s: machines `pending`, and `queued` with a job still
//! queued, with their window and whether another active disruptive job holds the machine.
//!
//! # Applying the decisions ([`Decisions`])
//! In the same transaction, in the order of the rules: results (only to a machine still `queued`
//! with that job), health, batches succeeded, halts (rollout and batches), rollouts succeeded,
//! batches opened; then for each missed machine, cancel its queued job (`where state =
//! 'queued'`: when an agent claimed it meanwhile, leave the machine to its result) and apply
//! [`moved`] (pending in the new window without a job, or failed); last, enqueue the
//! jobs (one can still meet the one-active-disruptive-job index: that machine stays pending for
//! a later tick) and mark their machines `queued` with them.
//!
//! # Differences from the store's dispatcher it replaces
//! - A missed window moves to the first window starting at or after `now`, not after the missed
//!   window's end (which, after a clock jump, gave a window already in the past).
//! - A queued machine whose unclaimed job is canceled for a missed window, and whose schedule has
//!   no window left, fails in the same tick (the dispatcher could not fail a machine still
//!   `queued`: it waited for a later tick to see it pending, and failed it only if its rollout
//!   was still running).
//! - The candidates are read once, before the tick's decisions. So a machine moves or installs
//!   one tick (a second) later than with the dispatcher, which read them again after each step,
//!   when: its job was canceled by someone else after its window ended (it is pending only once
//!   the result is applied); another rollout's missed window freed it in this tick (its row is
//!   still `busy`); or its move gave it a window starting exactly at `now`.
//! - Failing a machine keeps its attempts, as before: attempts count the windows a machine was
//!   given (only a new window adds one).

mod board;
mod installs;
mod opening;
mod results;
mod verdicts;

use chrono::{DateTime, Utc};

pub use board::Board;
pub use hotpatch_domain::rollout::decisions::{
    BatchKey, Decisions, Enqueue, Halt, HaltedBatch, HealthChange, InstallResult, Missed, MissedMove, Moved,
    Verdicts,
};
pub use hotpatch_domain::rollout::snapshot::{
    BatchRow, Candidate, EndedJob, HealthReport, RolloutRow, Snapshot, Tally,
};
pub use installs::{
    due_installs, maximum_duration_secs, missed_windows, moved, next_window_after_miss, IN_PROGRESS_LEFT,
    MIN_JOB_SECS, NO_WINDOW_LEFT,
};
pub use opening::open_batches;
pub use results::{record_health, sync_job_results};
pub use verdicts::{batch_verdict, judge_batches, BatchVerdict};

/// One tick of the rollouts at `now`, by the rules of the module: everything to apply, in order.
/// `limit` bounds the missed-window moves and the installs enqueued (each); the next tick takes
/// the rest.
pub fn tick(snapshot: &Snapshot, now: DateTime<Utc>, limit: usize) -> Decisions {
    let mut board = Board::new(&snapshot.rollouts);
    let results = sync_job_results(&mut board, &snapshot.ended_jobs);
    let health = record_health(&mut board, &snapshot.health);
    let verdicts = judge_batches(&mut board);
    let opened = open_batches(&mut board);
    let missed = missed_windows(&board, &snapshot.candidates, now, limit);
    let enqueue = due_installs(&board, &snapshot.candidates, now, limit);
    Decisions { results, health, verdicts, opened, missed, enqueue }
}
