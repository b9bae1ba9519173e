//! What a tick decides: transitions of rows, each list appliable with one set-based statement
//! (see the module for the order).

use super::{CycleKind, InstallState};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Everything one tick decided, in the order to apply it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Rule 1: machines that take their ended job's outcome.
    pub results: Vec<InstallResult>,
    /// Rule 2: installed machines whose health changed.
    pub health: Vec<HealthChange>,
    /// Rules 3–4: batches that succeeded or halted, rollouts halted or succeeded.
    pub verdicts: Verdicts,
    /// Rule 5: batches that open.
    pub opened: Vec<BatchKey>,
    /// Rule 6: machines whose window ended before they installed; each moves to its next
    /// window or fails (`hotpatch_scheduler::rollout::progress::moved`, once the caller has the machine's schedule).
    pub missed: Vec<Missed>,
    /// Rule 7: machines whose install job is enqueued now.
    pub enqueue: Vec<Enqueue>,
}

impl Decisions {
    /// Whether the tick decided nothing.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.health.is_empty()
            && self.verdicts.is_empty()
            && self.opened.is_empty()
            && self.missed.is_empty()
            && self.enqueue.is_empty()
    }
}

/// A batch of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchKey {
    /// The rollout.
    pub rollout_id: Uuid,
    /// The batch's position in the plan.
    pub batch_index: i32,
}

/// A machine takes its ended job's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallResult {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// The job that ended, which the machine keeps (apply only while the machine is still
    /// `queued` with this job).
    pub job_id: Uuid,
    /// `succeeded` (health not known yet), `failed`, or `pending` again when the job was
    /// canceled.
    pub state: InstallState,
    /// `None` when it succeeded; otherwise the job's error, or `job failed` / `job canceled`.
    pub error: Option<String>,
}

/// An installed machine's health as its agent reported it after the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// Healthy or not.
    pub healthy: bool,
}

/// The batch verdicts of a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Batches done: nothing waits and the failures are at or under the threshold.
    pub batches_succeeded: Vec<BatchKey>,
    /// Rollouts halted, with their batches over the threshold.
    pub halts: Vec<Halt>,
    /// Running rollouts with no batch left pending, open or halted.
    pub rollouts_succeeded: Vec<Uuid>,
}

impl Verdicts {
    /// Whether nothing was decided.
    pub fn is_empty(&self) -> bool {
        self.batches_succeeded.is_empty() && self.halts.is_empty() && self.rollouts_succeeded.is_empty()
    }
}

/// A rollout halted by batches over its failure threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// The rollout.
    pub rollout_id: Uuid,
    /// The batches that halt, by index, each with its reason.
    pub batches: Vec<HaltedBatch>,
    /// The rollout's halted reason: its batches' reasons joined with `"; "`.
    pub reason: String,
}

/// A batch over the failure threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltedBatch {
    /// The batch.
    pub batch_index: i32,
    /// Why, with the counts.
    pub reason: String,
}

/// A machine whose window ended before it installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// Its job, still queued: cancel it first (when no longer queued, an agent claimed it
    /// meanwhile: leave the machine to its result). `None` for a pending machine.
    pub cancel_job: Option<Uuid>,
    /// The end of the window it missed.
    pub window_end: DateTime<Utc>,
    /// Which window that was (the planned one is 1).
    pub attempts: i32,
}

/// Where a machine that missed its window goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissedMove {
    /// `pending` again in this window, without a job.
    Reschedule {
        /// The window's first instant (at or after the tick's `now`).
        start: DateTime<Utc>,
        /// The first instant after it.
        end: DateTime<Utc>,
    },
    /// `failed`: its schedule has no window left.
    Fail {
        /// The machine's error.
        reason: &'static str,
    },
}

/// A missed machine's transition, with its schedule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// The machine.
    pub machine_id: Uuid,
    /// The queued job to cancel first, as in [`Missed::cancel_job`].
    pub cancel_job: Option<Uuid>,
    /// Where it goes.
    pub to: MissedMove,
    /// Its attempts afterwards: one more when it takes a new window, unchanged when it fails.
    pub attempts: i32,
}

/// An install job to enqueue, and the machine then `queued` with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// Its rollout (the job's `rollout_id`).
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// What it installs.
    pub release_id: Uuid,
    /// How.
    pub install: CycleKind,
    /// Whether it reboots.
    pub reboot: bool,
    /// When its window closes.
    pub window_end: DateTime<Utc>,
    /// Which window this is for the machine (the planned one is 1).
    pub attempt: i32,
    /// The job's `maximum_duration`: the time left in the window, at least a minute.
    pub maximum_duration_secs: u32,
}
