//! Availability-first rollouts (DESIGN §1 "Orchestration"): the geo-pairs the planner keeps
//! apart, a rollout as the planner made it, its progress, the operator's
//! pause/resume/cancel, and the dispatcher's database steps.
//!
//! A rollout is written once ([`create`]): its batches, and per machine what it installs and in
//! which window. From then on the dispatcher (`hotpatch_app::rollouts::dispatcher`) advances it
//! on results, one leader per tick: it locks the unfinished rollouts ([`lock_rollouts`]), reads
//! their rows ([`load`]), lets `hotpatch_scheduler::rollout::progress` decide, and applies the
//! decisions with the statements of [`dispatch`] in the same transaction. The rules live in the
//! scheduler; the statements here only guard their writes with the states they were decided from.

mod control;
mod create;
mod dispatch;
mod failed;
mod pairs;
mod select;
mod view;

use chrono::{DateTime, Utc};
use hotpatch_domain::rollout::{CycleKind, RolloutOptions};
use uuid::Uuid;

use crate::error::StoreError;

pub use control::{automatic_in_flight, cancel, pause, resume, Canceled, Transition};
pub use create::{create, refresh_statistics, BatchRow, MachineRow, NewRollout, PlanRows};
pub use dispatch::{
    apply_health, apply_results, cancel_queued_job, halt, load, lock_rollouts, mark_failed, mark_queued,
    open_batches, reschedule, succeed_batches, succeed_rollouts,
};
pub use failed::{failed_machines, FailedMachine};
pub use pairs::{region_pairs, remove_region_pair, set_region_pair};
pub use select::{configuration_bodies, planner_inputs, PlannerInput};
pub use view::{
    get, list, machine_rollout, BatchProgress, InstallCounts, MachineRollout, RolloutView, WaveProgress,
};

pub use hotpatch_domain::rollout::{BatchState, InstallState, RolloutState};

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
    kind.as_str()
}

/// An install kind from its stored name.
fn parse_install(s: &str) -> Result<CycleKind, StoreError> {
    Ok(s.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_kinds_read_back_from_their_stored_names() {
        for kind in [CycleKind::Hotpatch, CycleKind::Baseline, CycleKind::CumulativeUpdate] {
            assert_eq!(parse_install(install_str(kind)).ok(), Some(kind));
        }
    }
}
