//! A rollout's options as a client sends them (every field optional) and as a rollout shows
//! them (defaults filled in).

use hotpatch_domain::rollout::RolloutOptions;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the rollout goes; every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsBody {
    /// Largest batch of machines outside availability sets, in percent of their region and zone
    /// (1–100, default 20; availability sets never go above 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_batch_percent: Option<u32>,
    /// Failure rate above which the rollout halts, in percent (0–100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub failure_threshold_percent: Option<u32>,
    /// Regions to go first, in this order (the first is a canary wave of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_order: Option<Vec<String>>,
}

impl OptionsBody {
    /// The planner's options, defaults filled in.
    pub fn options(&self) -> RolloutOptions {
        let d = RolloutOptions::default();
        RolloutOptions {
            max_batch_percent: self.max_batch_percent.unwrap_or(d.max_batch_percent),
            failure_threshold_percent: self.failure_threshold_percent.unwrap_or(d.failure_threshold_percent),
            region_order: self.region_order.clone().unwrap_or_default(),
        }
    }
}

/// The options a rollout runs with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OptionsView {
    /// Largest batch outside availability sets, percent.
    pub max_batch_percent: u32,
    /// Failure rate above which it halts, percent.
    pub failure_threshold_percent: u32,
    /// Regions that go first.
    pub region_order: Vec<String>,
}

impl From<&RolloutOptions> for OptionsView {
    fn from(o: &RolloutOptions) -> Self {
        OptionsView {
            max_batch_percent: o.max_batch_percent,
            failure_threshold_percent: o.failure_threshold_percent,
            region_order: o.region_order.clone(),
        }
    }
}
