//! What the planner reads: the release, the machines, their windows; and what each machine gets.

use chrono::{DateTime, Utc};
use hotpatch_domain::rollout::RolloutError;
use hotpatch_domain::{OsVersion, PatchOrchestration, Release, ReleaseKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::plan::UnplannedReason;
use crate::cycle::status::baseline_of;
use crate::cycle::{CycleKind, MachineState};
use crate::windows::{next_windows, Schedule};

/// The release being rolled out, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutRelease {
    /// The catalog release.
    pub id: Uuid,
    /// Its OS: machines of another OS are left out.
    pub os: OsVersion,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// For a hotpatch, the baseline of its cycle, which a machine must run to take it.
    pub baseline_id: Option<Uuid>,
}

impl RolloutRelease {
    /// The release as the planner sees it, with a hotpatch's baseline found the way the cycle
    /// engine finds it ([`baseline_of`]). A superseded release or a hotpatch without a baseline
    /// cannot be rolled out.
    pub fn from_catalog(release: &Release, catalog: &[Release]) -> Result<RolloutRelease, RolloutError> {
        if let Some(by) = release.superseded_by {
            return Err(RolloutError::ReleaseSuperseded { release: release.id, by });
        }
        let baseline_id = match release.spec.kind {
            ReleaseKind::Baseline => None,
            ReleaseKind::Hotpatch => Some(
                baseline_of(catalog, release).ok_or(RolloutError::HotpatchWithoutBaseline(release.id))?.id,
            ),
        };
        Ok(RolloutRelease { id: release.id, os: release.spec.os, kind: release.spec.kind, baseline_id })
    }
}

/// One machine of the rollout (the store fills it from the machine, its eligibility and its
/// reported state).
///
/// What it gets, from the release and `state` (the cycle engine's [`MachineState`]):
/// - a hotpatch release: the hotpatch (no reboot) when `state.current_baseline` is the
///   hotpatch's baseline; otherwise that baseline first (reboot; the hotpatch follows in a
///   later window, once the cycle engine sees the machine on it);
/// - a baseline release: the baseline (reboot);
/// - without hotpatch (`state.hotpatch` false: turned off or not eligible), whatever the
///   release: that month's cumulative update (reboot).
///
/// It reboots too when `state.reboot_pending`. It is left out when it already installed the
/// release (`state.latest_installed`, or for a baseline `state.current_baseline`), runs another
/// OS, or is not `automatic_by_platform` (other orchestrators are only assessed and reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutMachine {
    /// Identifier.
    pub machine_id: Uuid,
    /// Its OS.
    pub os: OsVersion,
    /// Who drives its updates.
    pub orchestration: PatchOrchestration,
    /// Region, e.g. `uksouth` (compared case-insensitively).
    pub region: String,
    /// Availability zone within the region.
    pub availability_zone: Option<String>,
    /// Availability set (a set is its name within the region).
    pub availability_set: Option<String>,
    /// Update domain within the availability set (ignored outside a set).
    pub update_domain: Option<i32>,
    /// Where it stands in the cycle: hotpatch on and eligible, current baseline, latest
    /// installed release, reboot pending.
    pub state: MachineState,
}

/// One maintenance window of a machine, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanWindow {
    /// First instant.
    pub start: DateTime<Utc>,
    /// First instant after the window.
    pub end: DateTime<Utc>,
}

impl PlanWindow {
    /// The first of `windows` (in any order) that starts at or after `from`: a window source
    /// for callers holding a list of each machine's next windows.
    pub fn first_from(windows: &[PlanWindow], from: DateTime<Utc>) -> Option<PlanWindow> {
        windows.iter().filter(|w| w.start >= from).min().copied()
    }

    /// The first window of `schedule` that starts at or after `from`: a window source over the
    /// window engine, which puts a window in progress at `from` first (the planner wants the
    /// next one then).
    pub fn first_of_schedule(schedule: &Schedule, from: DateTime<Utc>) -> Option<PlanWindow> {
        // Windows never overlap, so at most the first is in progress.
        next_windows(schedule, from, 2)
            .into_iter()
            .find(|w| w.start >= from)
            .map(|w| PlanWindow { start: w.start, end: w.end })
    }
}

/// What a machine does in the rollout, or why it is left out.
pub(super) enum Decision {
    /// It installs `release_id` the way `kind` says.
    Install {
        /// How.
        kind: CycleKind,
        /// What: the rollout's release, or the baseline it needs first.
        release_id: Uuid,
        /// Whether it reboots.
        reboot: bool,
    },
    /// It is left out.
    Skip(UnplannedReason),
}

/// What `machine` does in the rollout of `release` (the rules on [`RolloutMachine`]).
pub(super) fn decide(release: &RolloutRelease, machine: &RolloutMachine) -> Decision {
    let state = &machine.state;
    if machine.os != release.os {
        return Decision::Skip(UnplannedReason::OtherOs);
    }
    if machine.orchestration != PatchOrchestration::AutomaticByPlatform {
        return Decision::Skip(UnplannedReason::NotAutomaticByPlatform);
    }
    // A baseline is installed when it is the machine's baseline; anything else when it is the
    // latest release the machine installed.
    if state.latest_installed == Some(release.id) || state.current_baseline == Some(release.id) {
        return Decision::Skip(UnplannedReason::AlreadyInstalled);
    }
    let (kind, release_id) = match (state.hotpatch, release.kind, release.baseline_id) {
        (false, _, _) => (CycleKind::CumulativeUpdate, release.id),
        (true, ReleaseKind::Hotpatch, Some(b)) if state.current_baseline != Some(b) => {
            (CycleKind::Baseline, b)
        }
        (true, ReleaseKind::Hotpatch, _) => (CycleKind::Hotpatch, release.id),
        (true, ReleaseKind::Baseline, _) => (CycleKind::Baseline, release.id),
    };
    Decision::Install { kind, release_id, reboot: kind.requires_reboot() || state.reboot_pending }
}
