//! Availability-first rollouts (DESIGN §1 "Orchestration"): the geo-pairs the planner keeps
//! apart, a rollout as the planner made it ([`RolloutPlan`]), its progress, the operator's
//! pause/resume/cancel, and the dispatcher's database steps.
//!
//! A rollout is written once ([`create`]): its batches, and per machine what it installs and in
//! which window. From then on the dispatcher advances it on results, one leader per tick (the
//! caller holds the advisory lock and the transaction), in this order:
//! 0. [`lock_rollouts`]: the unfinished rollouts' rows, against the operator's transitions;
//! 1. [`sync_job_results`]: machines whose job ended take its outcome;
//! 2. [`record_health`]: installed machines take the health their agent reported since;
//! 3. [`evaluate_batches`]: an open batch succeeds (every machine done and healthy, failures at
//!    or under the threshold) or halts the rollout (failures over the threshold);
//! 4. [`open_batches`]: the regions of the current wave go in parallel, each region's batches one
//!    after the other; the next wave opens when every batch of this one succeeded;
//! 5. [`missed_windows`]: machines whose window passed before their job was claimed: the caller
//!    cancels the job ([`cancel_queued_job`]) and gives the machine its next window
//!    ([`reschedule`]);
//! 6. [`due_installs`]: machines of open batches inside their window: the caller enqueues a job
//!    for each ([`crate::jobs::enqueue`]) and records it ([`mark_queued`]).
//!
//! Machines install in their own windows, never before the one the planner gave them: a batch
//! that opens early waits for its machines' windows.
//!
//! [`RolloutPlan`]: hotpatch_scheduler::rollout::RolloutPlan

mod control;
mod create;
mod dispatch;
mod pairs;
mod select;
mod view;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use hotpatch_scheduler::cycle::CycleKind;
use hotpatch_scheduler::rollout::RolloutOptions;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

pub use control::{automatic_in_flight, cancel, pause, resume, Canceled, Transition};
pub use create::{create, BatchRow, MachineRow, NewRollout, PlanRows};
pub use dispatch::{
    cancel_queued_job, due_installs, evaluate_batches, lock_rollouts, mark_failed, mark_queued,
    missed_windows, open_batches, record_health, reschedule, sync_job_results, BatchEvent, BatchRef,
    DueInstall, MissedWindow, Synced,
};
pub use pairs::{region_pairs, remove_region_pair, set_region_pair};
pub use select::{configuration_bodies, planner_inputs, PlannerInput};
pub use view::{
    get, list, machine_rollout, BatchProgress, InstallCounts, MachineRollout, RolloutView, WaveProgress,
};

/// Declares a state enum stored as snake_case text, with its text form both ways.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Decode(format!(
                        concat!("unexpected ", stringify!($name), " {:?}"),
                        other
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a rollout is.
    RolloutState {
        /// Batches open and machines install as their windows come.
        Running = "running",
        /// Stopped by an operator: no new installs start (jobs already queued run).
        Paused = "paused",
        /// Stopped because a batch's failure rate went over the threshold.
        Halted = "halted",
        /// Ended by an operator.
        Canceled = "canceled",
        /// Every batch succeeded.
        Succeeded = "succeeded",
    }
}

text_enum! {
    /// Where a batch is.
    BatchState {
        /// Waiting for the batches before it.
        Pending = "pending",
        /// Its machines install as their windows come.
        Open = "open",
        /// Every machine installed and reported healthy (failures at or under the threshold).
        Succeeded = "succeeded",
        /// Its failure rate went over the threshold; resume reopens it.
        Halted = "halted",
        /// Its rollout was canceled.
        Canceled = "canceled",
    }
}

text_enum! {
    /// Where one machine's install is.
    InstallState {
        /// Waiting for its batch or its window.
        Pending = "pending",
        /// A job is enqueued (or running) for it.
        Queued = "queued",
        /// Its job succeeded.
        Succeeded = "succeeded",
        /// Its job failed.
        Failed = "failed",
        /// Its rollout was canceled before it installed.
        Canceled = "canceled",
    }
}

impl RolloutState {
    /// Whether the rollout is over.
    pub fn is_final(self) -> bool {
        matches!(self, RolloutState::Canceled | RolloutState::Succeeded)
    }
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Identifier (uuid v7).
    pub id: Uuid,
    /// The release rolled out.
    pub release_id: Uuid,
    /// The selector as requested.
    pub selector: serde_json::Value,
    /// The planner's options.
    pub options: RolloutOptions,
    /// Where it is.
    pub state: RolloutState,
    /// Why it halted (only when halted).
    pub halted_reason: Option<String>,
    /// Started by publishing the release.
    pub automatic: bool,
    /// The token that started it.
    pub created_by: Option<Uuid>,
    /// When automatic installs must be done (release + 30 days).
    pub deadline: DateTime<Utc>,
    /// The planner's estimate of its end.
    pub expected_finish: Option<DateTime<Utc>>,
    /// Machines in the plan.
    pub machine_count: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
    /// When it ended (canceled or succeeded).
    pub finished_at: Option<DateTime<Utc>>,
}

impl Rollout {
    /// Whether it is past its deadline without having finished.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        now > self.deadline && !self.state.is_final()
    }
}

/// The rollout's row as read (the columns every query selects).
struct RolloutRow {
    id: Uuid,
    release_id: Uuid,
    selector: serde_json::Value,
    options: serde_json::Value,
    state: String,
    halted_reason: Option<String>,
    automatic: bool,
    created_by: Option<Uuid>,
    deadline: DateTime<Utc>,
    expected_finish: Option<DateTime<Utc>>,
    machine_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<RolloutRow> for Rollout {
    type Error = StoreError;

    fn try_from(r: RolloutRow) -> Result<Rollout, StoreError> {
        Ok(Rollout {
            id: r.id,
            release_id: r.release_id,
            selector: r.selector,
            options: serde_json::from_value(r.options)
                .map_err(|e| StoreError::Decode(format!("rollout {} options: {e}", r.id)))?,
            state: r.state.parse()?,
            halted_reason: r.halted_reason,
            automatic: r.automatic,
            created_by: r.created_by,
            deadline: r.deadline,
            expected_finish: r.expected_finish,
            machine_count: r.machine_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

/// The stored name of an install kind.
fn install_str(kind: CycleKind) -> &'static str {
    match kind {
        CycleKind::Hotpatch => "hotpatch",
        CycleKind::Baseline => "baseline",
        CycleKind::CumulativeUpdate => "cumulative_update",
    }
}

/// An install kind from its stored name.
fn parse_install(s: &str) -> Result<CycleKind, StoreError> {
    match s {
        "hotpatch" => Ok(CycleKind::Hotpatch),
        "baseline" => Ok(CycleKind::Baseline),
        "cumulative_update" => Ok(CycleKind::CumulativeUpdate),
        other => Err(StoreError::Decode(format!("unexpected install kind {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_from_their_stored_names() {
        for s in ["running", "paused", "halted", "canceled", "succeeded"] {
            assert_eq!(s.parse::<RolloutState>().map(RolloutState::as_str).ok(), Some(s));
        }
        for s in ["pending", "open", "succeeded", "halted", "canceled"] {
            assert_eq!(s.parse::<BatchState>().map(BatchState::as_str).ok(), Some(s));
        }
        for s in ["pending", "queued", "succeeded", "failed", "canceled"] {
            assert_eq!(s.parse::<InstallState>().map(InstallState::as_str).ok(), Some(s));
        }
        assert!("Running".parse::<RolloutState>().is_err());
    }

    #[test]
    fn install_kinds_read_back_from_their_stored_names() {
        for kind in [CycleKind::Hotpatch, CycleKind::Baseline, CycleKind::CumulativeUpdate] {
            assert_eq!(parse_install(install_str(kind)).ok(), Some(kind));
        }
    }
}
