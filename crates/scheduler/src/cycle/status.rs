//! Where a machine stands in the cycle at an instant, and what it needs next (DESIGN §1 "Cycle").
//!
//! - A hotpatch applies only on top of its cycle's baseline: a machine that is not on the
//!   current baseline gets that baseline first, with a reboot (`needs_baseline`).
//! - An unplanned baseline supersedes its month's hotpatch, so it becomes the current baseline
//!   and machines need it, with a reboot.
//! - A machine with hotpatch off, or not eligible, gets the monthly cumulative update with a
//!   reboot every month.
//! - After a baseline or cumulative update the machine is `reboot_pending` until a reboot is
//!   reported, and is offered nothing before.

use chrono::{DateTime, Utc};
use hotpatch_domain::{Month, OsVersion, Release, ReleaseKind};
use serde::Serialize;
use uuid::Uuid;

use super::calendar::CalendarRule;
use super::publish::active_in;

// What a machine gets moved to the domain with the rollout states (the store reads it); the
// cycle engine's path stays.
pub use hotpatch_domain::rollout::CycleKind;

/// What the cycle engine needs to know about a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineState {
    /// Whether the machine takes hotpatches: turned on *and* eligible (the caller decides).
    pub hotpatch: bool,
    /// The baseline the machine runs on (`None` when unknown or never reported).
    pub current_baseline: Option<Uuid>,
    /// The latest release installed (a baseline, a hotpatch, or the release of the month whose
    /// cumulative update a non-hotpatch machine installed).
    pub latest_installed: Option<Uuid>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
}

/// The release a machine should install next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextRelease {
    /// How the machine takes it.
    pub kind: CycleKind,
    /// The catalog release (for a cumulative update: the release of its month).
    pub release_id: Uuid,
    /// Its month.
    pub month: Month,
    /// Whether installing it requires a reboot.
    pub reboot_required: bool,
}

/// A machine's position in the cycle at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CycleStatus {
    /// The month of the instant (UTC).
    pub month: Month,
    /// What the machine gets this month: the published release's kind, the rule's plan before
    /// the release is out, or `cumulative_update` for a machine without hotpatch.
    pub kind: CycleKind,
    /// What to install next, if anything (nothing while a reboot is pending).
    pub next_release: Option<NextRelease>,
    /// Whether the machine's next step needs a reboot: its next release needs one, or a
    /// reboot is pending.
    pub reboot_required: bool,
    /// A machine with hotpatch is not on the current baseline and must install it first.
    pub needs_baseline: bool,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
}

/// The latest active release of `os` that is out at `now` and satisfies `keep`.
fn latest(
    catalog: &[Release],
    os: OsVersion,
    now: DateTime<Utc>,
    keep: impl Fn(&Release) -> bool,
) -> Option<&Release> {
    catalog
        .iter()
        .filter(|r| r.spec.os == os && r.is_active() && r.is_out(now) && keep(r))
        .max_by_key(|r| (r.spec.month, r.spec.released_at))
}

/// The baseline in effect for `os` at `now`: the latest active baseline that is out.
pub fn current_baseline(catalog: &[Release], os: OsVersion, now: DateTime<Utc>) -> Option<&Release> {
    latest(catalog, os, now, |r| r.spec.kind == ReleaseKind::Baseline)
}

/// The baseline a hotpatch applies on: the latest active baseline of its OS before its month.
pub fn baseline_of<'a>(catalog: &'a [Release], hotpatch: &Release) -> Option<&'a Release> {
    catalog
        .iter()
        .filter(|r| {
            r.spec.os == hotpatch.spec.os
                && r.is_active()
                && r.spec.kind == ReleaseKind::Baseline
                && r.spec.month < hotpatch.spec.month
        })
        .max_by_key(|r| r.spec.month)
}

/// How a machine with hotpatch takes a release of `kind`.
fn cycle_kind_of(kind: ReleaseKind) -> CycleKind {
    match kind {
        ReleaseKind::Baseline => CycleKind::Baseline,
        ReleaseKind::Hotpatch => CycleKind::Hotpatch,
    }
}

fn next(kind: CycleKind, r: &Release) -> NextRelease {
    NextRelease { kind, release_id: r.id, month: r.spec.month, reboot_required: kind.requires_reboot() }
}

/// Where a machine of `os` stands at `now`, and what it needs next.
pub fn cycle_status(
    os: OsVersion,
    state: &MachineState,
    catalog: &[Release],
    rule: &CalendarRule,
    now: DateTime<Utc>,
) -> CycleStatus {
    let month = Month::of(now);
    let (kind, next_release, needs_baseline) = if state.hotpatch {
        let this_month = active_in(catalog, os, month).filter(|r| r.is_out(now));
        let kind =
            this_month.map_or(cycle_kind_of(rule.planned_kind(os, month)), |r| cycle_kind_of(r.spec.kind));
        match current_baseline(catalog, os, now) {
            None => (kind, None, false),
            Some(b) if state.current_baseline != Some(b.id) => {
                (kind, Some(next(CycleKind::Baseline, b)), true)
            }
            Some(b) => {
                // Hotpatches are cumulative within their cycle: the latest one is all it needs.
                let hotpatch = latest(catalog, os, now, |r| {
                    r.spec.kind == ReleaseKind::Hotpatch && r.spec.month > b.spec.month
                });
                let pending = hotpatch.filter(|h| state.latest_installed != Some(h.id));
                (kind, pending.map(|h| next(CycleKind::Hotpatch, h)), false)
            }
        }
    } else {
        // Without hotpatch, each month's release stands for that month's cumulative update.
        let newest = latest(catalog, os, now, |_| true);
        let pending = newest.filter(|r| state.latest_installed != Some(r.id));
        (CycleKind::CumulativeUpdate, pending.map(|r| next(CycleKind::CumulativeUpdate, r)), false)
    };
    let next_release = if state.reboot_pending { None } else { next_release };
    CycleStatus {
        month,
        kind,
        reboot_required: state.reboot_pending || next_release.is_some_and(|n| n.reboot_required),
        next_release,
        needs_baseline,
        reboot_pending: state.reboot_pending,
    }
}

/// The state after the machine installed `release` the way `kind` says: a baseline makes it the
/// current baseline; a baseline or cumulative update leaves a reboot pending.
pub fn installed(state: &MachineState, release: &Release, kind: CycleKind) -> MachineState {
    let mut s = *state;
    s.latest_installed = Some(release.id);
    match (release.spec.kind, kind) {
        (ReleaseKind::Baseline, _) => s.current_baseline = Some(release.id),
        // A hotpatch month's cumulative update moves the machine off every hotpatch baseline.
        (ReleaseKind::Hotpatch, CycleKind::CumulativeUpdate) => s.current_baseline = None,
        (ReleaseKind::Hotpatch, _) => {}
    }
    if kind.requires_reboot() {
        s.reboot_pending = true;
    }
    s
}

/// The state after the machine reported a reboot.
pub fn rebooted(state: &MachineState) -> MachineState {
    MachineState { reboot_pending: false, ..*state }
}
