//! What a tick reads: plain rows the store loads in the tick's transaction, each with the
//! columns of one table or one join, nothing computed but the per-batch counts.

use super::{BatchState, CycleKind, InstallState, RolloutState};
use crate::job::{HealthStatus, JobState};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Everything one tick decides from (see the module for what each list holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The rollouts still going: running, paused or halted, with their batches.
    pub rollouts: Vec<RolloutRow>,
    /// Machines `queued` whose install job ended, in any rollout.
    pub ended_jobs: Vec<EndedJob>,
    /// The agents' latest health reports for installed machines of open or halted batches.
    pub health: Vec<HealthReport>,
    /// Machines that may install or miss their window: pending, or queued with a job still
    /// queued.
    pub candidates: Vec<Candidate>,
}

/// A rollout that is running, paused or halted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    /// Identifier (uuid v7: a later rollout has a greater id).
    pub id: Uuid,
    /// Where it is.
    pub state: RolloutState,
    /// The failure rate above which a batch halts it, in percent.
    pub failure_threshold_percent: u32,
    /// All its batches, whatever their state.
    pub batches: Vec<BatchRow>,
}

/// A batch of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// Position in the plan, from 1.
    pub index: i32,
    /// Its wave, from 1.
    pub wave: i32,
    /// Its region (lower case).
    pub region: String,
    /// Its availability zone, if its machines have one.
    pub zone: Option<String>,
    /// Where it is.
    pub state: BatchState,
    /// For an open batch, its machines by state; not read for the others (zero will do).
    pub machines: Tally,
}

/// The machines of a batch by where their install is. A machine's health counts only once it
/// installed: `awaiting_health`, `healthy` and `unhealthy` split the succeeded machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Waiting for their window (or for the missed-window move).
    pub pending: u32,
    /// With a job enqueued or running.
    pub queued: u32,
    /// Installed, without a health report since.
    pub awaiting_health: u32,
    /// Installed and healthy.
    pub healthy: u32,
    /// Installed and unhealthy.
    pub unhealthy: u32,
    /// Failed.
    pub failed: u32,
}

/// Where one machine counts in its batch's [`Tally`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// [`Tally::pending`].
    Pending,
    /// [`Tally::queued`].
    Queued,
    /// [`Tally::awaiting_health`].
    AwaitingHealth,
    /// [`Tally::healthy`].
    Healthy,
    /// [`Tally::unhealthy`].
    Unhealthy,
    /// [`Tally::failed`].
    Failed,
}

impl Tally {
    /// Every machine of the batch.
    pub fn total(&self) -> u64 {
        [self.pending, self.queued, self.awaiting_health, self.healthy, self.unhealthy, self.failed]
            .iter()
            .map(|&n| u64::from(n))
            .sum()
    }

    /// The machines against the threshold: failed, or installed and unhealthy.
    pub fn bad(&self) -> u64 {
        u64::from(self.failed) + u64::from(self.unhealthy)
    }

    /// The machines the batch still waits for: pending, queued, or installed without health.
    pub fn waiting(&self) -> u64 {
        u64::from(self.pending) + u64::from(self.queued) + u64::from(self.awaiting_health)
    }

    fn slot(&mut self, slot: Slot) -> &mut u32 {
        match slot {
            Slot::Pending => &mut self.pending,
            Slot::Queued => &mut self.queued,
            Slot::AwaitingHealth => &mut self.awaiting_health,
            Slot::Healthy => &mut self.healthy,
            Slot::Unhealthy => &mut self.unhealthy,
            Slot::Failed => &mut self.failed,
        }
    }

    /// One machine counts in `to` instead of `from`.
    /// Moves one machine from one count to another (a decision of this tick).
    pub fn move_one(&mut self, from: Slot, to: Slot) {
        let was = self.slot(from);
        *was = was.saturating_sub(1);
        *self.slot(to) += 1;
    }
}

/// A machine `queued` whose install job ended (succeeded, failed or canceled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedJob {
    /// Its rollout (in any state: a job left running when its rollout was canceled ends too).
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// How the job ended; a job not ended is ignored.
    pub state: JobState,
    /// The job's error, if any.
    pub error: Option<String>,
}

/// The latest health report of a machine that installed (or whose job just succeeded), in an
/// open or halted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// Its install as loaded: `succeeded`, or `queued` when its job ended with this tick's
    /// [`EndedJob`]s (the report counts if the job succeeded).
    pub state: InstallState,
    /// The health recorded for the install so far (`None`: none yet).
    pub healthy: Option<bool>,
    /// When the install job ended: only a report after it counts (`None`: never).
    pub job_finished_at: Option<DateTime<Utc>>,
    /// What the agent reported last.
    pub status: HealthStatus,
    /// When.
    pub reported_at: DateTime<Utc>,
}

/// A machine that may install now or may have missed its window: `pending` (in any batch), or
/// `queued` with a job that is still queued (no agent claimed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// Its batch.
    pub batch_index: i32,
    /// The machine.
    pub machine_id: Uuid,
    /// `pending` or `queued`.
    pub state: InstallState,
    /// Its job: for a queued machine, the job still queued; for a pending one, a job that
    /// failed or was canceled in this window (which keeps it from installing again before the
    /// window ends), or `None`.
    pub job_id: Option<Uuid>,
    /// Its window's first instant.
    pub window_start: DateTime<Utc>,
    /// The first instant after its window.
    pub window_end: DateTime<Utc>,
    /// Which window this is for the machine (the planned one is 1).
    pub attempts: i32,
    /// The machine has an active disruptive job (install, rollback, reboot; queued or leased)
    /// other than this row's own.
    pub busy: bool,
    /// What it installs.
    pub release_id: Uuid,
    /// How.
    pub install: CycleKind,
    /// Whether it reboots.
    pub reboot: bool,
}
