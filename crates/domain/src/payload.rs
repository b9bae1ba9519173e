//! What install and rollback jobs carry to the agent (the `payload` of a claimed job). The server
//! writes these ("install now", rollbacks, rollouts) and the agent reads them, with the same
//! types, so the two ends cannot drift apart.
//!
//! Payloads are read leniently: every field has a default and unknown fields are ignored, so an
//! older agent still runs jobs written by a newer server.

use std::fmt;
use std::str::FromStr;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::job::AvailableUpdate;
use crate::machine::OsBuild;
use crate::release::{Classification, Kb, Month, Release, ReleaseKind};

/// Whether an install may reboot the machine (as in maintenance configurations).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RebootSetting {
    /// When an installed update needs it.
    #[default]
    IfRequired,
    /// Never: updates that need a reboot leave one pending.
    Never,
    /// After the install, whether needed or not.
    Always,
}

/// An ISO 8601 duration of hours, minutes and seconds: `PT2H`, `PT1H30M`, `PT90M`, or `P1D`.
/// Written back in canonical form (`PT1H30M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoDuration(TimeDelta);

impl IsoDuration {
    /// A duration of whole seconds.
    pub fn from_secs(seconds: u32) -> IsoDuration {
        IsoDuration(TimeDelta::seconds(i64::from(seconds)))
    }

    /// The length.
    pub fn as_delta(self) -> TimeDelta {
        self.0
    }

    /// The length as a standard duration.
    pub fn as_std(self) -> std::time::Duration {
        self.0.to_std().unwrap_or_default()
    }
}

impl FromStr for IsoDuration {
    type Err = String;

    /// The grammar maintenance configurations accept: `PT` followed by hours, minutes and seconds
    /// in that order (each optional, at least one, whole numbers), or `P1D`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{}' is not an ISO 8601 duration such as PT2H or PT1H30M", s.escape_debug());
        if s == "P1D" {
            return Ok(IsoDuration(TimeDelta::days(1)));
        }
        let mut rest = s.strip_prefix("PT").filter(|r| !r.is_empty()).ok_or_else(bad)?;
        let mut total = 0i64;
        for (unit, seconds) in [('H', 3600), ('M', 60), ('S', 1)] {
            if let Some(i) = rest.find(unit) {
                let n = &rest[..i];
                if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                total += n.parse::<i64>().map_err(|_| bad())? * seconds;
                rest = &rest[i + 1..];
            }
        }
        if rest.is_empty() {
            Ok(IsoDuration(TimeDelta::seconds(total)))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.num_seconds().max(0);
        let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
        f.write_str("PT")?;
        if h > 0 {
            write!(f, "{h}H")?;
        }
        if m > 0 {
            write!(f, "{m}M")?;
        }
        if sec > 0 || s == 0 {
            write!(f, "{sec}S")?;
        }
        Ok(())
    }
}

serde_as_string!(IsoDuration);

/// The payload of an `install` job.
///
/// Which updates it installs:
/// - with `kbs`: exactly those (a catalog release: a rollout sends its KB with `release_id`,
///   `build` and `requires_reboot`);
/// - without: every available update whose classification is in `classifications` (absent:
///   critical and security), plus the available updates named in `kb_include`.
///
/// Then `kb_exclude` removes KBs, and `exclude_kbs_requiring_reboot` removes the updates that need
/// a reboot. `reboot` says whether the machine may reboot; `maximum_duration` bounds the whole
/// job (reboot included): an agent that cannot finish in time fails it with
/// "maximum duration exceeded".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct InstallPayload {
    /// Exactly these KBs (empty: chosen by classification and `kb_include`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub kbs: Vec<Kb>,
    /// Classifications to install when `kbs` is empty (absent: critical and security; `[]`: none,
    /// only `kb_include`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifications: Option<Vec<Classification>>,
    /// KBs to install as well, whatever their classification.
    #[schema(value_type = Vec<String>)]
    pub kb_include: Vec<Kb>,
    /// KBs never to install.
    #[schema(value_type = Vec<String>)]
    pub kb_exclude: Vec<Kb>,
    /// Leave out every update that needs a reboot.
    pub exclude_kbs_requiring_reboot: bool,
    /// The job's time limit, ISO 8601 (`PT2H`); none: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "PT2H")]
    pub maximum_duration: Option<IsoDuration>,
    /// Whether the machine may reboot.
    pub reboot: RebootSetting,
    /// Whether the update needs a reboot (a baseline); when absent the agent decides per KB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_reboot: Option<bool>,
    /// The OS build once the update is in effect (a catalog release's build).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub build: Option<OsBuild>,
    /// The catalog release being installed (rollouts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<Uuid>,
    /// The rollout the job belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<Uuid>,
}

impl InstallPayload {
    /// The install of one catalog release, as a rollout sends it: its KB and build, whether it
    /// needs a reboot (a baseline or a cumulative update does, a hotpatch does not: the caller
    /// knows how the machine takes it), rebooting if required. Set `rollout_id`,
    /// `maximum_duration` (the window's end) or `reboot` on the result as needed.
    pub fn of_release(release: &Release, requires_reboot: bool) -> InstallPayload {
        InstallPayload {
            kbs: vec![release.spec.kb.clone()],
            requires_reboot: Some(requires_reboot),
            build: Some(release.spec.build),
            release_id: Some(release.id),
            ..InstallPayload::default()
        }
    }

    /// The classifications it installs by: the ones given, or critical and security.
    pub fn effective_classifications(&self) -> Vec<Classification> {
        self.classifications
            .clone()
            .unwrap_or_else(|| vec![Classification::Critical, Classification::Security])
    }

    /// Whether installing `kb` needs a reboot: as the payload says for all its KBs, else as the
    /// machine knows the update (`machine_says`).
    pub fn kb_requires_reboot(&self, kb: &Kb, machine_says: impl Fn(&Kb) -> bool) -> bool {
        self.requires_reboot.unwrap_or_else(|| machine_says(kb))
    }

    /// The KBs it installs on a machine offering `available` (see the type's docs), each once:
    /// `kbs` in their order, else the chosen available updates in the machine's order.
    /// `machine_says` tells whether a KB needs a reboot when the payload does not say, for KBs
    /// the machine knows but no longer offers (a retried install). The agents' programs apply
    /// the same rule (shared fixtures: `deploy/agent/fixtures/selection/`).
    pub fn select(&self, available: &[AvailableUpdate], machine_says: impl Fn(&Kb) -> bool) -> Vec<Kb> {
        let candidates: Vec<Kb> = if self.kbs.is_empty() {
            let wanted = self.effective_classifications();
            available
                .iter()
                .filter(|u| wanted.contains(&u.classification) || self.kb_include.contains(&u.kb))
                .map(|u| u.kb.clone())
                .collect()
        } else {
            self.kbs.clone()
        };
        let mut chosen: Vec<Kb> = Vec::with_capacity(candidates.len());
        for kb in candidates {
            let excluded = self.kb_exclude.contains(&kb)
                || (self.exclude_kbs_requiring_reboot && self.kb_requires_reboot(&kb, &machine_says));
            if !excluded && !chosen.contains(&kb) {
                chosen.push(kb);
            }
        }
        chosen
    }
}

/// A catalog release as a rollback plan names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanRelease {
    /// The release.
    pub id: Uuid,
    /// Its KB.
    #[schema(value_type = String, example = "KB5034439", pattern = "^(KB|kb)?[0-9]{6,8}$")]
    pub kb: Kb,
    /// Its month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-01", pattern = "^[2-9][0-9]{3}-(0[1-9]|1[0-2])$")]
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// The OS build it brings.
    #[schema(value_type = String, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub build: OsBuild,
}

impl From<&Release> for PlanRelease {
    fn from(r: &Release) -> Self {
        PlanRelease {
            id: r.id,
            kb: r.spec.kb.clone(),
            month: r.spec.month,
            kind: r.spec.kind,
            build: r.spec.build,
        }
    }
}

/// One step of a rollback, in order (DESIGN §1: uninstall the latest update, install the last
/// baseline, reboot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RollbackStep {
    /// Uninstall this release (the latest installed).
    Uninstall {
        /// The release.
        release: PlanRelease,
    },
    /// Install this baseline.
    Install {
        /// The baseline.
        release: PlanRelease,
    },
    /// Reboot the machine.
    Reboot,
}

/// The payload of a `rollback` job: the plan, and the build the machine runs after its reboot
/// (the baseline's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RollbackPayload {
    /// The steps, in order. Empty (older jobs): remove the latest installed update and reboot.
    pub steps: Vec<RollbackStep>,
    /// The OS build after the reboot.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub build: Option<OsBuild>,
}

impl RollbackPayload {
    /// The release the plan uninstalls.
    pub fn uninstalls(&self) -> Option<&PlanRelease> {
        self.steps.iter().find_map(|s| match s {
            RollbackStep::Uninstall { release } => Some(release),
            _ => None,
        })
    }

    /// The baseline the plan installs.
    pub fn installs(&self) -> Option<&PlanRelease> {
        self.steps.iter().find_map(|s| match s {
            RollbackStep::Install { release } => Some(release),
            _ => None,
        })
    }
}

/// The payload of a `reboot` job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RebootPayload {
    /// The OS build after the reboot, when it changes (a baseline installed without reboot).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub build: Option<OsBuild>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shared selection fixture (`deploy/agent/fixtures/selection/`): the rule the simulator
    /// and the agents' programs apply.
    #[test]
    fn the_selection_matches_every_shared_fixture() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agent/fixtures/selection");
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(files.len() >= 8, "fixtures in {}", dir.display());
        for file in files {
            let fixture: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let payload: InstallPayload = serde_json::from_value(fixture["payload"].clone()).unwrap();
            let available: Vec<AvailableUpdate> =
                serde_json::from_value(fixture["available"].clone()).unwrap();
            let expected: Vec<Kb> = serde_json::from_value(fixture["expected"].clone()).unwrap();
            let offered = |kb: &Kb| available.iter().any(|u| &u.kb == kb && u.requires_reboot);
            assert_eq!(payload.select(&available, offered), expected, "{}", file.display());
        }
    }
    use serde_json::json;

    #[test]
    fn iso_durations_parse_in_the_maintenance_grammar_and_print_canonically() {
        for (text, secs, canonical) in [
            ("PT2H", 7200, "PT2H"),
            ("PT1H30M", 5400, "PT1H30M"),
            ("PT90M", 5400, "PT1H30M"),
            ("PT30M", 1800, "PT30M"),
            ("PT45S", 45, "PT45S"),
            ("PT6H0M", 21600, "PT6H"),
            ("P1D", 86400, "PT24H"),
        ] {
            let d: IsoDuration = text.parse().unwrap();
            assert_eq!(d.as_delta().num_seconds(), secs, "{text}");
            assert_eq!(d.to_string(), canonical, "{text}");
        }
        for bad in ["", "PT", "2H", "PT2", "PT-1H", "PT1.5H", "PT30M1H", "P2D", "PT1234567H", "pt2h", "PT2H "]
        {
            assert!(bad.parse::<IsoDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_install_payload_means_critical_and_security_with_a_reboot_if_required() {
        let p: InstallPayload = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p, InstallPayload::default());
        assert_eq!(p.reboot, RebootSetting::IfRequired);
        assert_eq!(p.effective_classifications(), [Classification::Critical, Classification::Security]);
    }

    #[test]
    fn an_install_payload_round_trips_and_ignores_unknown_fields() {
        let p = InstallPayload {
            classifications: Some(vec![Classification::Security, Classification::Dotnet]),
            kb_include: vec!["KB5040001".parse().unwrap()],
            kb_exclude: vec!["KB5040002".parse().unwrap()],
            exclude_kbs_requiring_reboot: true,
            maximum_duration: Some("PT2H".parse().unwrap()),
            reboot: RebootSetting::Never,
            ..InstallPayload::default()
        };
        let wire = serde_json::to_value(&p).unwrap();
        assert_eq!(
            wire,
            json!({"classifications": ["security", "dotnet"], "kb_include": ["KB5040001"],
                   "kb_exclude": ["KB5040002"], "exclude_kbs_requiring_reboot": true,
                   "maximum_duration": "PT2H", "reboot": "never"})
        );
        let mut newer = wire.clone();
        newer["some_future_field"] = json!(1);
        assert_eq!(serde_json::from_value::<InstallPayload>(newer).unwrap(), p);
    }

    #[test]
    fn rollback_steps_are_tagged_by_action() {
        let release = PlanRelease {
            id: Uuid::nil(),
            kb: "KB5000004".parse().unwrap(),
            month: "2025-05".parse().unwrap(),
            kind: ReleaseKind::Hotpatch,
            build: "20348.2300".parse().unwrap(),
        };
        let p = RollbackPayload {
            steps: vec![RollbackStep::Uninstall { release: release.clone() }, RollbackStep::Reboot],
            build: None,
        };
        let wire = serde_json::to_value(&p).unwrap();
        assert_eq!(wire["steps"][0]["action"], "uninstall");
        assert_eq!(wire["steps"][0]["release"]["kb"], "KB5000004");
        assert_eq!(wire["steps"][1], json!({"action": "reboot"}));
        assert_eq!(serde_json::from_value::<RollbackPayload>(wire).unwrap(), p);
        assert_eq!(p.uninstalls(), Some(&release));
        assert_eq!(p.installs(), None);
    }
}
