//! The rollback plan (DESIGN §1: no automatic rollback). Rolling back is: uninstall the latest
//! update, install the last baseline, reboot. This module only says what the steps are; the
//! dispatch issue executes them.

use hotpatch_domain::{Release, ReleaseKind};
use serde::Serialize;
use uuid::Uuid;

use super::status::{baseline_of, MachineState};

/// One step of a rollback, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RollbackStep {
    /// Uninstall this release (the latest installed).
    Uninstall {
        /// The release.
        release_id: Uuid,
    },
    /// Install this baseline (the last one before the uninstalled release).
    Install {
        /// The baseline.
        release_id: Uuid,
    },
    /// Reboot the machine.
    Reboot,
}

/// Why a machine cannot be rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefused {
    /// Nothing is recorded as installed.
    #[error("nothing is recorded as installed on this machine, so there is nothing to roll back")]
    NothingInstalled,
    /// The latest installed release is not in the catalog.
    #[error("the latest installed release {0} is not in the catalog")]
    UnknownRelease(Uuid),
    /// There is no baseline to go back to.
    #[error("there is no baseline before {0} to go back to")]
    NoEarlierBaseline(String),
}

/// The steps that roll a machine back: uninstall its latest release, install the last baseline
/// before it (for a hotpatch: its own baseline; for a baseline: the one before), reboot.
pub fn rollback_plan(
    state: &MachineState,
    catalog: &[Release],
) -> Result<Vec<RollbackStep>, RollbackRefused> {
    let latest_id = state.latest_installed.ok_or(RollbackRefused::NothingInstalled)?;
    let latest =
        catalog.iter().find(|r| r.id == latest_id).ok_or(RollbackRefused::UnknownRelease(latest_id))?;
    let baseline = match latest.spec.kind {
        // The hotpatch's own cycle baseline, or the one the machine reports, when it differs
        // (e.g. a machine that took a later baseline without reporting the hotpatch's).
        ReleaseKind::Hotpatch => state
            .current_baseline
            .and_then(|id| catalog.iter().find(|r| r.id == id && r.id != latest.id))
            .or_else(|| baseline_of(catalog, latest)),
        ReleaseKind::Baseline => baseline_of(catalog, latest),
    }
    .ok_or_else(|| RollbackRefused::NoEarlierBaseline(latest.spec.kb.to_string()))?;
    Ok(vec![
        RollbackStep::Uninstall { release_id: latest.id },
        RollbackStep::Install { release_id: baseline.id },
        RollbackStep::Reboot,
    ])
}
