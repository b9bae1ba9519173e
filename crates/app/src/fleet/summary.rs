//! The fleet summary: the fleet counted by hotpatch status, compliance, reboot pending and
//! overdue installs, as a whole and by region, OS or the value of a label. Every count is the
//! tally of what a machine's patch status says of it at the same instant; the store groups the
//! machines into classes that the rules judge alike, so the fleet is read in one scan.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use hotpatch_domain::{HotpatchStatus, Release};
use hotpatch_scheduler::cycle::{cycle_status, reboots_in_year, MachineState};
use hotpatch_store::status::{self, FleetClass};
use serde::Serialize;
use utoipa::ToSchema;

pub use hotpatch_store::status::GroupBy;

use crate::error::AppError;
use crate::settings::Settings;
use crate::status::views::RebootsView;
use crate::App;

/// Automatic installs must complete within this long after the release (DESIGN §1).
pub const INSTALL_DEADLINE: TimeDelta = TimeDelta::days(30);

/// Machines by hotpatch status (`hotpatch.status` of their patch status).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct HotpatchCounts {
    /// Hotpatch on and on the current baseline.
    pub enabled: i64,
    /// Hotpatch off (eligible).
    pub disabled: i64,
    /// Not eligible.
    pub not_eligible: i64,
    /// Hotpatch on, but the current baseline must be installed first.
    pub needs_baseline: i64,
}

/// Machines by compliance.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ComplianceCounts {
    /// Assessed, no critical or security update outstanding and no release of the cycle pending.
    pub compliant: i64,
    /// Its last assessment lists critical or security updates, or a release of the cycle is pending.
    pub non_compliant: i64,
    /// Never assessed.
    pub unknown: i64,
}

/// The counts of a set of machines.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FleetCounts {
    /// Machines.
    pub machines: i64,
    /// By hotpatch status.
    pub hotpatch_status: HotpatchCounts,
    /// By compliance.
    pub compliance: ComplianceCounts,
    /// An installed update waits for a reboot.
    pub reboot_pending: i64,
    /// The release they need came out more than 30 days ago.
    pub overdue: i64,
    /// Their reboots this year against the same machines on monthly cumulative updates.
    pub reboots: RebootsView,
}

/// The counts of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FleetGroup {
    /// The region, OS or label value (`null`: machines without the label).
    pub key: Option<String>,
    /// Its counts.
    #[serde(flatten)]
    pub counts: FleetCounts,
}

/// `GET /v1/fleet/summary`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetSummary {
    /// The instant the counts are for.
    pub at: DateTime<Utc>,
    /// The fleet as a whole.
    #[serde(flatten)]
    pub counts: FleetCounts,
    /// `region`, `os` or `label:<key>`; `null` without grouping.
    pub group_by: Option<String>,
    /// The groups, by key (machines without the label last); empty without grouping.
    pub groups: Vec<FleetGroup>,
}

/// The fleet counted at `at` (default now), as a whole and, unless `group_by` is
/// [`GroupBy::Nothing`], by group. One scan of the fleet.
pub async fn summary(
    app: &App,
    group_by: GroupBy,
    at: Option<DateTime<Utc>>,
) -> Result<FleetSummary, AppError> {
    let now = at.unwrap_or_else(|| app.clock.now());
    let classes = status::fleet_classes(&mut *app.pool.acquire().await?, &group_by).await?;
    let (_, catalog) = app.status_catalog.catalog_now(&app.pool).await?;
    // An empty fleet or group still counts its reboots in the year of `now`.
    let empty =
        FleetCounts { reboots: RebootsView { year: now.year(), ..Default::default() }, ..Default::default() };
    let mut counts = empty.clone();
    let mut groups: BTreeMap<(bool, Option<String>), FleetCounts> = BTreeMap::new();
    for c in &classes {
        tally(&mut counts, c, &catalog, &app.settings, now);
        if group_by != GroupBy::Nothing {
            // Machines without the label sort last.
            let key = (c.group.is_none(), c.group.clone());
            tally(groups.entry(key).or_insert_with(|| empty.clone()), c, &catalog, &app.settings, now);
        }
    }
    let group_by = match group_by {
        GroupBy::Nothing => None,
        GroupBy::Region => Some("region".to_owned()),
        GroupBy::Os => Some("os".to_owned()),
        GroupBy::Label(k) => Some(format!("label:{k}")),
    };
    Ok(FleetSummary {
        at: now,
        counts,
        group_by,
        groups: groups.into_iter().map(|((_, key), counts)| FleetGroup { key, counts }).collect(),
    })
}

/// Adds a class of machines to `counts`, judged as their patch status judges each of them.
fn tally(
    counts: &mut FleetCounts,
    c: &FleetClass,
    catalog: &[Release],
    settings: &Settings,
    now: DateTime<Utc>,
) {
    let takes = hotpatch_domain::takes_hotpatches(c.hotpatch_enabled, c.eligible, c.platform, c.enrollment);
    let machine = MachineState {
        hotpatch: takes,
        current_baseline: c.current_baseline_id,
        latest_installed: c.latest_installed_id,
        reboot_pending: c.reboot_pending,
    };
    let cycle = cycle_status(c.os, &machine, catalog, &settings.calendar, now);
    let n = c.machines;
    counts.machines += n;
    let h = &mut counts.hotpatch_status;
    match HotpatchStatus::from_flags(c.eligible, c.hotpatch_enabled) {
        HotpatchStatus::Enabled if takes && cycle.needs_baseline => h.needs_baseline += n,
        HotpatchStatus::Enabled => h.enabled += n,
        HotpatchStatus::Disabled => h.disabled += n,
        HotpatchStatus::NotEligible => h.not_eligible += n,
        HotpatchStatus::NeedsBaseline => h.needs_baseline += n,
    }
    let compliance = &mut counts.compliance;
    if !c.assessed {
        compliance.unknown += n;
    } else if c.recommended_pending || cycle.next_release.is_some() {
        compliance.non_compliant += n;
    } else {
        compliance.compliant += n;
    }
    if cycle.reboot_pending {
        counts.reboot_pending += n;
    }
    let overdue = cycle
        .next_release
        .and_then(|r| catalog.iter().find(|x| x.id == r.release_id))
        .is_some_and(|r| now - r.spec.released_at > INSTALL_DEADLINE);
    if overdue {
        counts.overdue += n;
    }
    counts.reboots.add(&reboots_in_year(catalog, c.os, takes, &settings.calendar, now), n);
}
