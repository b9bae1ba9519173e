//! A rollout's options and everything that can make planning refuse.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::FieldError;

/// The default largest batch of machines outside availability sets, in percent of their group.
pub const DEFAULT_MAX_BATCH_PERCENT: u32 = 20;
/// The default failure rate above which a rollout halts, in percent.
pub const DEFAULT_FAILURE_THRESHOLD_PERCENT: u32 = 10;

/// How a rollout goes; every field has a default, so `{}` is a valid value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutOptions {
    /// Largest batch of machines outside availability sets, in percent of their region and zone
    /// (1–100, default 20). Availability sets never go above 20% (DESIGN §1), less when this is
    /// lower.
    pub max_batch_percent: u32,
    /// The failure rate above which the rollout halts, in percent (0–100, default 10). The
    /// planner only checks and carries it; the rollout loop applies it.
    pub failure_threshold_percent: u32,
    /// Regions to go first, in this order (e.g. a canary region); the others follow by name.
    pub region_order: Vec<String>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            max_batch_percent: DEFAULT_MAX_BATCH_PERCENT,
            failure_threshold_percent: DEFAULT_FAILURE_THRESHOLD_PERCENT,
            region_order: Vec::new(),
        }
    }
}

impl RolloutOptions {
    /// The first thing wrong with the options, if any (on their own; the planner also checks
    /// `region_order` against the machines).
    pub fn validate(&self) -> Result<(), RolloutError> {
        if !(1..=100).contains(&self.max_batch_percent) {
            return Err(RolloutError::MaxBatchPercent(self.max_batch_percent));
        }
        if self.failure_threshold_percent > 100 {
            return Err(RolloutError::FailureThresholdPercent(self.failure_threshold_percent));
        }
        let mut seen = std::collections::BTreeSet::new();
        for region in &self.region_order {
            if region.trim().is_empty() {
                return Err(RolloutError::EmptyRegionInOrder);
            }
            if !seen.insert(region.to_ascii_lowercase()) {
                return Err(RolloutError::DuplicateRegionInOrder(region.clone()));
            }
        }
        Ok(())
    }
}

/// Why a rollout cannot be planned. All but [`InvalidWindow`](Self::InvalidWindow) are about the
/// request (a validation problem; [`field`](Self::field) names the field to blame);
/// `InvalidWindow` is a bug of the caller's window source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// `max_batch_percent` is outside 1–100.
    #[error("max_batch_percent must be between 1 and 100, not {0}")]
    MaxBatchPercent(u32),
    /// `failure_threshold_percent` is above 100.
    #[error("failure_threshold_percent must be between 0 and 100, not {0}")]
    FailureThresholdPercent(u32),
    /// `region_order` holds an empty name.
    #[error("region_order must not hold an empty region name")]
    EmptyRegionInOrder,
    /// `region_order` names a region twice.
    #[error("region_order names '{0}' more than once")]
    DuplicateRegionInOrder(String),
    /// `region_order` names a region none of the rollout's machines is in.
    #[error("region_order names '{0}', but no machine of this rollout is in that region")]
    RegionNotInRollout(String),
    /// A geo-pair names the same region twice.
    #[error("region '{0}' cannot be geo-paired with itself")]
    RegionPairedWithItself(String),
    /// A machine is given twice.
    #[error("machine {0} is given more than once")]
    DuplicateMachine(Uuid),
    /// The release is a hotpatch without a baseline to apply on.
    #[error("hotpatch {0} has no baseline before it in the catalog, so no machine can take it")]
    HotpatchWithoutBaseline(Uuid),
    /// The release was replaced by an unplanned baseline.
    #[error("release {release} was superseded by the unplanned baseline {by}; roll that out instead")]
    ReleaseSuperseded {
        /// The release asked for.
        release: Uuid,
        /// The unplanned baseline that replaced it.
        by: Uuid,
    },
    /// The window source answered a window that starts before the instant asked for, or that
    /// does not end after it starts (a bug of the caller's window source).
    #[error("the window {start}..{end} given for machine {machine_id} does not start at or after {from} or is empty")]
    InvalidWindow {
        /// The machine.
        machine_id: Uuid,
        /// The instant the window was asked from.
        from: DateTime<Utc>,
        /// The window's start.
        start: DateTime<Utc>,
        /// The window's end.
        end: DateTime<Utc>,
    },
}

impl RolloutError {
    /// The request field the error is about, for a validation problem's `errors`.
    pub fn field(&self) -> &'static str {
        match self {
            RolloutError::MaxBatchPercent(_) => "max_batch_percent",
            RolloutError::FailureThresholdPercent(_) => "failure_threshold_percent",
            RolloutError::EmptyRegionInOrder
            | RolloutError::DuplicateRegionInOrder(_)
            | RolloutError::RegionNotInRollout(_) => "region_order",
            RolloutError::RegionPairedWithItself(_) => "region_pairs",
            RolloutError::DuplicateMachine(_) | RolloutError::InvalidWindow { .. } => "machines",
            RolloutError::HotpatchWithoutBaseline(_) | RolloutError::ReleaseSuperseded { .. } => "release",
        }
    }

    /// The error as one invalid field.
    pub fn field_error(&self) -> FieldError {
        FieldError::new(self.field(), self.to_string())
    }
}
