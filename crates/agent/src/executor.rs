//! What runs a job on a machine. The agent loop ([`crate::agent`]) owns the protocol (claim,
//! heartbeats, reports); an [`Executor`] owns the machine. Two exist: the simulator's
//! [`crate::sim::SimulatedMachine`], and [`crate::command::CommandExecutor`], which runs an
//! operator's program per job (on Windows, the reference PowerShell programs in
//! `deploy/agent/windows/` that drive the Windows Update Agent).

use std::future::Future;

use hotpatch_domain::job::{ClaimedJob, Health, Inventory, JobResult, Outcome};
use hotpatch_domain::Kb;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a job went on the machine: what the agent reports as its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOutcome {
    /// Succeeded or failed.
    pub outcome: Outcome,
    /// Why it failed.
    pub error: Option<String>,
    /// KBs installed by the job.
    pub installed: Vec<Kb>,
    /// The machine rebooted during the job.
    pub rebooted: bool,
    /// A reboot is still pending after the job.
    pub reboot_pending: bool,
    /// For an assessment: the inventory to report before the result. When an assessment
    /// succeeds without one, the agent asks [`Executor::inventory`].
    pub inventory: Option<Inventory>,
    /// The executor started a restart of the machine that has not happened yet: the outcome
    /// holds once it has, which the agent confirms by the boot marker
    /// ([`Executor::boot_marker`]), across its own restart.
    #[serde(default)]
    pub awaits_restart: bool,
}

impl JobOutcome {
    /// A success that changed nothing.
    pub fn succeeded(reboot_pending: bool) -> JobOutcome {
        JobOutcome {
            outcome: Outcome::Succeeded,
            error: None,
            installed: Vec::new(),
            rebooted: false,
            reboot_pending,
            inventory: None,
            awaits_restart: false,
        }
    }

    /// A failure, with the reason.
    pub fn failed(error: impl Into<String>, reboot_pending: bool) -> JobOutcome {
        JobOutcome {
            outcome: Outcome::Failed,
            error: Some(error.into()),
            ..JobOutcome::succeeded(reboot_pending)
        }
    }

    /// The result to report under this lease.
    pub fn to_result(&self, lease_id: Uuid) -> JobResult {
        JobResult {
            lease_id,
            outcome: self.outcome,
            error: self.error.clone(),
            installed: self.installed.clone(),
            rebooted: Some(self.rebooted),
            reboot_pending: Some(self.reboot_pending),
        }
    }
}

/// Why the executor could not read the machine's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExecutorError(pub String);

/// Runs jobs on one machine and reads its state.
///
/// The agent polls `run`'s future together with its heartbeat timer, and drops it when the
/// lease is lost or a shutdown deadline passes, so `run` should be cancel-safe at await points.
pub trait Executor: Send {
    /// The installed and available updates, the OS build and whether a reboot is pending.
    fn inventory(&mut self) -> impl Future<Output = Result<Inventory, ExecutorError>> + Send;

    /// Does what the job says (assess, install, rollback, reboot).
    fn run(&mut self, job: &ClaimedJob) -> impl Future<Output = JobOutcome> + Send;

    /// The machine's health, reported after installs, rollbacks and reboots.
    fn health(&mut self) -> impl Future<Output = Health> + Send;

    /// What identifies the machine's current boot (see [`crate::boot`]), so that a job found in
    /// hand at start can tell a crash of the agent from a restart of the machine. `None`: the
    /// machine never restarts under the agent (the simulator's live in memory).
    fn boot_marker(&mut self) -> Option<String> {
        None
    }
}
