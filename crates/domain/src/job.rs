//! Jobs an agent runs, and the wire shapes of the agent protocol (DESIGN §2 "Job queue", §3
//! "Payloads clients rely on"): the claimed job with its lease, heartbeat, result, inventory
//! and health. The server (`hotpatch-api`) and the reference agent (`hotpatch-agent`) both use
//! these types, so the two ends cannot drift apart; the payloads of install and rollback jobs
//! are in [`crate::payload`].
//!
//! Also the queue's retry policy, a pure function of the attempt and the instant.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::release::{Classification, Kb};

/// What a job asks the agent to do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobKind {
    /// Report the machine's inventory (`POST /v1/agent/inventory`), then the result.
    Assess,
    /// Install updates (payload: what to install and whether a reboot is allowed).
    Install,
    /// Uninstall the latest update and return to the last baseline.
    Rollback,
    /// Reboot the machine.
    Reboot,
}

impl JobKind {
    /// Whether the job may reboot or change the machine: at most one such job is active per machine.
    pub fn is_disruptive(self) -> bool {
        !matches!(self, JobKind::Assess)
    }
}

/// Where a job is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobState {
    /// Waiting for its agent (from `run_after` on).
    Queued,
    /// Claimed by its agent, under a lease.
    Leased,
    /// Finished as the agent reported.
    Succeeded,
    /// Failed (reported by the agent, or out of attempts).
    Failed,
    /// Canceled before it finished.
    Canceled,
    /// No agent claimed it within the job time-to-live (the machine's agent was not connected);
    /// its `error` says so.
    Expired,
}

impl JobState {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Canceled | JobState::Expired)
    }
}

/// A lease on a claimed job: present its id with every heartbeat and the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    /// Fences late writers: a heartbeat or result with another id gets 409 `lease_lost`.
    pub id: Uuid,
    /// The lease ends here unless a heartbeat extends it.
    pub expires_at: DateTime<Utc>,
}

/// A job as its agent receives it from `POST /v1/agent/jobs/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimedJob {
    /// The job.
    pub id: Uuid,
    /// What to do.
    pub kind: JobKind,
    /// The agent's machine.
    pub machine_id: Uuid,
    /// 1 for the first claim, 2 after one lost lease, …
    pub attempt: i32,
    /// Kind-specific details (for installs: what to install).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The lease.
    pub lease: Lease,
}

/// `POST /v1/agent/jobs/{id}/heartbeat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The lease being extended.
    pub lease_id: Uuid,
}

/// How a job ended, as the agent reports it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// Not done; `error` says why.
    Failed,
}

/// `POST /v1/agent/jobs/{id}/result`. Sending the same result twice is harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// The lease the job was done under.
    pub lease_id: Uuid,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// KBs installed by this job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<Kb>,
    /// The machine rebooted during the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebooted: Option<bool>,
    /// A reboot is still pending after the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_pending: Option<bool>,
}

/// An update installed on the machine, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstalledUpdate {
    /// The KB.
    #[schema(value_type = String, example = "KB5034439", pattern = "^(KB|kb)?[0-9]{6,8}$")]
    pub kb: Kb,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// The day it was installed.
    #[serde(deserialize_with = "crate::time::date")]
    pub installed_on: NaiveDate,
    /// Who installed it (e.g. `hotpatch`, `windows_update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_by: Option<String>,
}

/// An update the machine could install, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailableUpdate {
    /// The KB.
    #[schema(value_type = String, example = "KB5035857", pattern = "^(KB|kb)?[0-9]{6,8}$")]
    pub kb: Kb,
    /// Its title.
    pub title: String,
    /// Its classification.
    pub classification: Classification,
    /// Whether installing it reboots the machine.
    pub requires_reboot: bool,
}

impl AvailableUpdate {
    /// Critical and security updates are recommended; the rest count towards update compliance.
    pub fn is_recommended(&self) -> bool {
        matches!(self.classification, Classification::Critical | Classification::Security)
    }
}

/// `POST /v1/agent/inventory`: the result of an assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The OS build, e.g. `20348.2227`.
    #[schema(value_type = String, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub os_build: crate::OsBuild,
    /// A reboot is pending.
    pub reboot_pending: bool,
    /// Installed updates.
    #[serde(default)]
    pub installed_updates: Vec<InstalledUpdate>,
    /// Updates available to install.
    #[serde(default)]
    pub available_updates: Vec<AvailableUpdate>,
}

impl Inventory {
    /// Whether a recommended update (see [`AvailableUpdate::is_recommended`]) is available:
    /// the machine is not compliant until it is installed.
    pub fn recommended_pending(&self) -> bool {
        self.available_updates.iter().any(AvailableUpdate::is_recommended)
    }
}

/// Healthy or not.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HealthStatus {
    /// The machine's workload works.
    Healthy,
    /// Something is wrong (rollouts halt on too many of these).
    Unhealthy,
}

/// One named health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What was checked.
    pub name: String,
    /// Its verdict.
    pub status: HealthStatus,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /v1/agent/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Overall verdict.
    pub status: HealthStatus,
    /// The checks behind it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthCheck>,
}

/// How a job whose lease expired is retried: exponential backoff with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first lost attempt.
    pub base: TimeDelta,
    /// No delay is longer than this.
    pub max: TimeDelta,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: TimeDelta::seconds(5), max: TimeDelta::minutes(10) }
    }
}

impl RetryPolicy {
    /// When a job whose attempt number `attempt` (1 = first claim) was lost may run again.
    ///
    /// The delay is `base · 2^(attempt-1)`, capped at `max`, then scaled into its upper half by
    /// `jitter` ∈ [0, 1) ("equal jitter"): retries of many jobs lost together spread out, and no
    /// retry comes sooner than half its backoff. `jitter` is an argument so the function is pure.
    pub fn next_run_at(&self, now: DateTime<Utc>, attempt: i32, jitter: f64) -> DateTime<Utc> {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let full = self.base.checked_mul(1_i32 << exponent.min(30)).unwrap_or(self.max).min(self.max);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        let ms = full.num_milliseconds() as f64;
        let delay = TimeDelta::milliseconds((ms / 2.0 + ms / 2.0 * jitter) as i64);
        now + delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn retry_delay_doubles_with_each_attempt_until_the_cap() {
        let p = RetryPolicy { base: TimeDelta::seconds(5), max: TimeDelta::seconds(60) };
        let full = |attempt| (p.next_run_at(at(), attempt, 1.0) - at()).num_seconds();
        assert_eq!([full(1), full(2), full(3), full(4), full(5), full(9)], [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn retry_delay_with_no_jitter_is_half_the_backoff() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_run_at(at(), 1, 0.0) - at(), TimeDelta::milliseconds(2500));
    }

    #[test]
    fn only_installs_rollbacks_and_reboots_are_disruptive() {
        assert!(!JobKind::Assess.is_disruptive());
        assert!(
            JobKind::Install.is_disruptive()
                && JobKind::Rollback.is_disruptive()
                && JobKind::Reboot.is_disruptive()
        );
    }

    #[test]
    fn critical_and_security_updates_are_recommended() {
        for c in Classification::ALL {
            let u = AvailableUpdate {
                kb: "KB5000001".parse().unwrap(),
                title: "t".into(),
                classification: c,
                requires_reboot: false,
            };
            assert_eq!(u.is_recommended(), matches!(c, Classification::Critical | Classification::Security));
        }
    }

    #[test]
    fn an_inventory_has_a_recommended_update_pending_when_one_is_available() {
        let update = |classification| AvailableUpdate {
            kb: "KB5000001".parse().unwrap(),
            title: "t".into(),
            classification,
            requires_reboot: false,
        };
        let inventory = |available: Vec<AvailableUpdate>| Inventory {
            os_build: "20348.2700".parse().unwrap(),
            reboot_pending: false,
            installed_updates: vec![],
            available_updates: available,
        };
        assert!(!inventory(vec![]).recommended_pending(), "nothing available");
        assert!(!inventory(vec![update(Classification::Dotnet), update(Classification::Driver)])
            .recommended_pending());
        assert!(inventory(vec![update(Classification::Dotnet), update(Classification::Security)])
            .recommended_pending());
        assert!(inventory(vec![update(Classification::Critical)]).recommended_pending());
    }

    proptest! {
        #[test]
        fn retry_is_never_sooner_than_half_the_backoff_nor_later_than_the_cap(
            attempt in -5i32..100, jitter in proptest::num::f64::ANY, base_ms in 1i64..100_000, max_ms in 1i64..10_000_000,
        ) {
            let p = RetryPolicy { base: TimeDelta::milliseconds(base_ms), max: TimeDelta::milliseconds(max_ms) };
            let delay = p.next_run_at(at(), attempt, jitter) - at();
            prop_assert!(delay <= p.max);
            prop_assert!(delay >= TimeDelta::zero());
            let full = (base_ms.saturating_mul(1 << (attempt.max(1) - 1).min(30))).min(max_ms);
            prop_assert!(delay.num_milliseconds() >= full / 2 - 1);
        }

        #[test]
        fn retry_delay_never_shrinks_as_attempts_grow(attempt in 1i32..60, jitter in 0.0f64..1.0) {
            let p = RetryPolicy::default();
            prop_assert!(p.next_run_at(at(), attempt + 1, jitter) >= p.next_run_at(at(), attempt, jitter));
        }
    }
}
