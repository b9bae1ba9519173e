//! The patch status as a portal sees it (DESIGN §3 "Patch status").

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{AvailableUpdate, HealthCheck, HealthStatus};
use hotpatch_domain::{HotpatchStatus, Month};
use hotpatch_scheduler::cycle::{CycleKind, YearReboots};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::catalog::ReleaseRef;
use crate::schedules::windows::WindowView;

/// The machine's hotpatch switch, eligibility and resulting status.
#[derive(Debug, Serialize, ToSchema)]
pub struct HotpatchView {
    /// Requested by the operator.
    pub enabled: bool,
    /// Allowed by the eligibility rules.
    pub eligible: bool,
    /// Preview (Arc-connected machines).
    pub preview: bool,
    /// `enabled`, `disabled`, `not_eligible` or `needs_baseline`.
    pub status: HotpatchStatus,
}

/// How a machine takes a release.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CycleKindView {
    /// A baseline: reboot.
    Baseline,
    /// A hotpatch: no reboot.
    Hotpatch,
    /// The monthly cumulative update of a machine without hotpatch: reboot.
    CumulativeUpdate,
}

impl From<CycleKind> for CycleKindView {
    fn from(k: CycleKind) -> Self {
        match k {
            CycleKind::Baseline => CycleKindView::Baseline,
            CycleKind::Hotpatch => CycleKindView::Hotpatch,
            CycleKind::CumulativeUpdate => CycleKindView::CumulativeUpdate,
        }
    }
}

/// What the machine should install next.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextReleaseView {
    /// How the machine takes it.
    pub kind: CycleKindView,
    /// Whether installing it requires a reboot.
    pub reboot_required: bool,
    /// The release (for a cumulative update: the catalog release of its month).
    pub release: ReleaseRef,
}

/// The machine's position in the cycle.
#[derive(Debug, Serialize, ToSchema)]
pub struct CycleView {
    /// The month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-05")]
    pub month: Month,
    /// What the machine gets this month.
    pub kind: CycleKindView,
    /// What to install next; `null` when up to date or while a reboot is pending.
    pub next_release: Option<NextReleaseView>,
    /// Whether the next step needs a reboot.
    pub reboot_required: bool,
    /// The machine is not on the current baseline and must install it before hotpatches.
    pub needs_baseline: bool,
}

/// The portal view of a machine's patching.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatchStatusView {
    /// The machine.
    pub machine_id: Uuid,
    /// Hotpatch switch, eligibility and status.
    pub hotpatch: HotpatchView,
    /// OS build, e.g. `20348.2227`.
    pub os_build: Option<String>,
    /// The baseline it runs on.
    pub current_baseline: Option<ReleaseRef>,
    /// The latest release it installed.
    pub latest_installed: Option<ReleaseRef>,
    /// Its position in the cycle.
    pub cycle: CycleView,
    /// Critical and security updates available to it (from its last assessment).
    pub recommended_updates: Vec<AvailableUpdate>,
    /// Other available updates, not auto-installed (from its last assessment).
    pub update_compliance: Vec<AvailableUpdate>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
    /// When it was last assessed (`null`: never).
    pub last_assessment_at: Option<DateTime<Utc>>,
    /// Its next maintenance window (the first of `GET /v1/machines/{id}/windows` at the same instant).
    pub next_window: Option<WindowView>,
    /// Its agent (`null`: no agent token was ever issued for it).
    pub agent: Option<AgentView>,
    /// Its last health report (`null`: none yet).
    pub health: Option<HealthView>,
    /// The rollout it is in (running, paused or halted) and its window there (`null`: none).
    pub rollout: Option<MachineRolloutView>,
    /// Its reboots this year against the same machine on monthly cumulative updates.
    pub reboots: RebootsView,
    /// When the machine or its installed state last changed.
    pub updated_at: DateTime<Utc>,
}

/// A machine's place in a rollout.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineRolloutView {
    /// The rollout.
    pub id: Uuid,
    /// The rollout's state: `running`, `paused` or `halted`.
    #[schema(example = "running")]
    pub state: String,
    /// The machine's install in it: `pending`, `queued`, `succeeded`, `failed` or `canceled`.
    #[schema(example = "pending")]
    pub install_state: String,
    /// Its batch (from 1).
    pub batch: i32,
    /// The window it installs in: the planned one, or the next after a missed one.
    pub window_start: DateTime<Utc>,
    /// End of that window.
    pub window_end: DateTime<Utc>,
    /// Windows given so far (the planned one is 1).
    pub windows_tried: i32,
}

/// A machine's agent as the portal shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Its last request (`null`: never connected).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// It called within the last two minutes (agents long-poll for at most a minute).
    pub connected: bool,
}

/// A machine's last health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// Overall verdict.
    pub status: HealthStatus,
    /// The checks behind it.
    pub checks: Vec<HealthCheck>,
    /// When it was reported.
    pub reported_at: Option<DateTime<Utc>>,
}

/// What a machine runs (`PUT /v1/machines/{id}/installed-state`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstalledState {
    /// The baseline the machine runs on (a baseline of its OS), or `null`.
    #[serde(default)]
    pub current_baseline_id: Option<Uuid>,
    /// The latest release it installed (of its OS), or `null`.
    #[serde(default)]
    pub latest_installed_id: Option<Uuid>,
    /// An installed update waits for a reboot.
    #[serde(default)]
    pub reboot_pending: bool,
}

/// A machine's recorded installed state.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledStateView {
    /// The machine.
    pub machine_id: Uuid,
    /// The baseline it runs on.
    pub current_baseline: Option<ReleaseRef>,
    /// The latest release it installed.
    pub latest_installed: Option<ReleaseRef>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
    /// When it was recorded.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Reboots in the calendar year (`hotpatch_scheduler::cycle::reboots`): what the cycle asks of
/// the machines (baselines with hotpatch, every month without) against the same machines on
/// monthly cumulative updates, so far and projected over the year. For a fleet, the sums.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RebootsView {
    /// The year (UTC) of the instant.
    pub year: i32,
    /// Reboots so far this year.
    pub this_year: i64,
    /// The same months on monthly cumulative updates.
    pub monthly_cumulative: i64,
    /// Reboots hotpatching avoided so far.
    pub avoided: i64,
    /// The whole year: the releases out, and the calendar's plan for the months to come.
    pub projected_year: i64,
    /// The whole year on monthly cumulative updates.
    pub projected_monthly_cumulative: i64,
    /// Reboots the projected year avoids.
    pub projected_avoided: i64,
}

impl RebootsView {
    /// Adds `n` machines with these reboots.
    pub fn add(&mut self, r: &YearReboots, n: i64) {
        self.year = r.year;
        self.this_year += i64::from(r.so_far) * n;
        self.monthly_cumulative += i64::from(r.so_far_monthly) * n;
        self.avoided += i64::from(r.avoided()) * n;
        self.projected_year += i64::from(r.projected) * n;
        self.projected_monthly_cumulative += i64::from(r.projected_monthly) * n;
        self.projected_avoided += i64::from(r.projected_avoided()) * n;
    }
}

impl From<&YearReboots> for RebootsView {
    fn from(r: &YearReboots) -> Self {
        let mut v = RebootsView::default();
        v.add(r, 1);
        v
    }
}
