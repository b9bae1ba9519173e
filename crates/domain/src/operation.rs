//! Operations: what a client asked the fleet to do ("assess these machines now"), polled through
//! `GET /v1/operations/{id}`, and the selector that names the machines (DESIGN §3). Shared by the
//! server and its clients (agent simulator, `hotpatchctl`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::job::JobState;

/// What an operation does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OperationKind {
    /// Assess now.
    Assess,
    /// Install updates now.
    Install,
    /// Roll back.
    Rollback,
}

/// Where an operation is, derived from its jobs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OperationStatus {
    /// No job has started.
    Queued,
    /// Some job has started and some has not finished.
    Running,
    /// Every job succeeded.
    Succeeded,
    /// Every job is over and at least one failed.
    Failed,
    /// Canceled before every job finished.
    Canceled,
}

impl OperationStatus {
    /// Whether the operation is over.
    pub fn is_final(self) -> bool {
        matches!(self, OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Canceled)
    }

    /// The status of an operation whose jobs are in these states (one per machine).
    pub fn of(states: impl IntoIterator<Item = JobState>) -> OperationStatus {
        let mut c = StateCounts::default();
        for s in states {
            match s {
                JobState::Queued => c.queued += 1,
                JobState::Leased => c.leased += 1,
                JobState::Succeeded => c.succeeded += 1,
                JobState::Failed => c.failed += 1,
                JobState::Canceled => c.canceled += 1,
                JobState::Expired => c.expired += 1,
            }
        }
        OperationStatus::from_counts(&c)
    }

    /// The status of an operation with this many jobs in each state.
    ///
    /// Failures win over cancellations: a pipeline waiting on the operation must learn that
    /// something failed even if the rest was then canceled. A job that expired unclaimed did not
    /// happen either: it counts as a failure. (SQL has the same rule: `operation_status()`.)
    pub fn from_counts(c: &StateCounts) -> OperationStatus {
        let done = c.succeeded + c.failed + c.canceled + c.expired;
        let total = done + c.queued + c.leased;
        match () {
            _ if done == total && c.failed + c.expired > 0 => OperationStatus::Failed,
            _ if done == total && c.canceled > 0 => OperationStatus::Canceled,
            _ if done == total => OperationStatus::Succeeded,
            _ if c.queued == total => OperationStatus::Queued,
            _ => OperationStatus::Running,
        }
    }
}

/// How many of an operation's jobs are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateCounts {
    /// Queued.
    pub queued: i64,
    /// Leased (running).
    pub leased: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed.
    pub failed: i64,
    /// Canceled.
    pub canceled: i64,
    /// Expired unclaimed.
    pub expired: i64,
}

impl StateCounts {
    /// The per-machine counts clients see (canceled and expired count as failed: they did not
    /// happen).
    pub fn machines(&self) -> MachineCounts {
        MachineCounts {
            total: self.queued + self.leased + self.succeeded + self.failed + self.canceled + self.expired,
            succeeded: self.succeeded,
            failed: self.failed + self.canceled + self.expired,
            pending: self.queued + self.leased,
        }
    }
}

/// Per-machine counts of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct MachineCounts {
    /// Machines in the operation.
    pub total: i64,
    /// Machines whose job succeeded.
    pub succeeded: i64,
    /// Machines whose job failed, was canceled or expired unclaimed.
    pub failed: i64,
    /// Machines whose job is queued or running.
    pub pending: i64,
}

/// One machine's part of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MachineResult {
    /// The machine.
    pub machine_id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// The job's state.
    pub state: JobState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/operations/{id}`, and the body of every 202 that starts one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    /// The operation.
    pub id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub status: OperationStatus,
    /// Per-machine counts.
    pub machines: MachineCounts,
    /// Per-machine results: failures first, then the rest (at most 1,000; see `results_truncated`).
    pub results: Vec<MachineResult>,
    /// More machines than `results` lists.
    #[serde(default)]
    pub results_truncated: bool,
    /// Warnings about what the operation will do (e.g. "may reboot").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its last job ended (`null` until then).
    pub finished_at: Option<DateTime<Utc>>,
}

/// One operation as `GET /v1/operations` lists it: its status and counts, without per-machine
/// results (read `GET /v1/operations/{id}` for those).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationSummary {
    /// The operation.
    pub id: Uuid,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub status: OperationStatus,
    /// Per-machine counts.
    pub machines: MachineCounts,
    /// The token that asked (`null`: unknown).
    pub created_by: Option<Uuid>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it was canceled (`POST /v1/operations/{id}/cancel`), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<DateTime<Utc>>,
    /// When its last job ended (`null` until then).
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which operations `GET /v1/operations` lists; every given part must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperationFilter {
    /// Of this kind.
    pub kind: Option<OperationKind>,
    /// In this status.
    pub status: Option<OperationStatus>,
    /// Started by this token.
    pub created_by: Option<Uuid>,
}

/// Which machines a bulk action applies to; every given part must match. `{}` names the whole fleet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// These machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_ids: Option<Vec<Uuid>>,
    /// Machines carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Machines in one of these regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn operation_status_follows_its_jobs() {
        let cases: &[(&[JobState], OperationStatus)] = &[
            (&[Queued, Queued], OperationStatus::Queued),
            (&[Queued, Leased], OperationStatus::Running),
            (&[Succeeded, Queued], OperationStatus::Running),
            (&[Succeeded, Succeeded], OperationStatus::Succeeded),
            (&[Succeeded, Failed], OperationStatus::Failed),
            (&[Canceled, Succeeded], OperationStatus::Canceled),
            (&[Canceled, Failed], OperationStatus::Failed),
            (&[Failed, Leased], OperationStatus::Running),
            (&[Expired, Succeeded], OperationStatus::Failed),
            (&[Expired, Canceled], OperationStatus::Failed),
            (&[Expired, Queued], OperationStatus::Running),
            (&[], OperationStatus::Succeeded),
        ];
        for (states, want) in cases {
            assert_eq!(OperationStatus::of(states.iter().copied()), *want, "{states:?}");
        }
    }
}
