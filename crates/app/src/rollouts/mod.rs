//! Rollouts (DESIGN §1 "Orchestration"): a release taken to a selection of machines
//! availability-first. Planning ([`plan`], shown by [`plan_view`]), starting one an operator
//! asks for ([`start`]) or one a publication starts ([`automatic`]), reading them ([`view`]),
//! the operator's pause, resume and cancel ([`control`]), and the dispatcher that advances
//! running rollouts ([`dispatcher`]).

pub mod automatic;
pub mod control;
pub mod dispatcher;
pub mod failed;
pub mod options;
pub mod plan;
pub mod plan_view;
pub mod start;
pub mod view;

#[cfg(test)]
mod tests;

pub use automatic::start_automatic;
pub use control::{cancel, pause, resume};
pub use failed::{failed_machines, FailedMachineView, FailedMachines};
pub use hotpatch_store::rollouts::RolloutState;
pub use options::{OptionsBody, OptionsView};
pub use plan::Planned;
pub use plan_view::{
    PlanCounts, PlanView, PlannedBatchView, PlannedMachineView, PlannedWaveView, UnplannedView,
};
pub(crate) use start::refresh_statistics;
pub use start::{preview, rows, start, PreviewRequest, RolloutRequest};
pub use view::{get, list, BatchProgressView, CountsView, RolloutDetail, RolloutSummary, WaveProgressView};

/// Most machines one rollout may select: the bulk operations' limit.
pub use crate::operations::MAX_IDS;

/// Automatic installs must be done this long after the release (DESIGN §1).
pub const DEADLINE_DAYS: i64 = 30;
