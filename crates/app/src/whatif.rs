//! `POST /v1/what-if`: what an unplanned baseline, or a withdrawn hotpatch, would do to the
//! fleet — which machines change what they install next and reboot, in which window, how the
//! year's reboots change, which rollouts it touches — with nothing written. The cycle under the
//! scenario's catalog is `hotpatch_scheduler::cycle::whatif`; this module reads the fleet.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use hotpatch_domain::{Month, OsVersion, Release};
use hotpatch_scheduler::cycle::{compare, scenario_catalog, MachineState, Scenario, WhatIfError};
use hotpatch_store::machines::{self, MachineFilter};
use hotpatch_store::rollouts::RolloutState;
use hotpatch_store::status::{self, GroupBy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::catalog::ReleaseRef;
use crate::error::AppError;
use crate::schedules::windows::{applied_from, windows_of, WindowView};
use crate::status::find;
use crate::status::views::RebootsView;
use crate::App;

/// Machines listed at most by default, and at most at all.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Machines read per page while looking for those that change.
const PAGE: i64 = 1000;

/// The scenario to look at.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "scenario", rename_all = "snake_case", deny_unknown_fields)]
pub enum WhatIfRequest {
    /// An unplanned baseline of `os` in `month`.
    UnplannedBaseline {
        /// The OS.
        os: OsVersion,
        /// Its month, `YYYY-MM`.
        #[schema(value_type = String, example = "2026-12")]
        month: Month,
        /// When it comes out (RFC 3339 or a date); default: the month's second Tuesday at 18:00
        /// UTC, or now when that has passed.
        #[serde(default, deserialize_with = "hotpatch_domain::time::optional_instant")]
        #[schema(value_type = Option<String>)]
        released_at: Option<DateTime<Utc>>,
    },
    /// The hotpatch `release_id` withdrawn.
    HotpatchWithdrawn {
        /// The release.
        release_id: Uuid,
    },
}

/// A machine whose next install changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatIfMachine {
    /// The machine.
    pub machine_id: Uuid,
    /// Its name.
    pub name: String,
    /// What it would install next now (`null`: nothing).
    pub next_before: Option<ReleaseRef>,
    /// What it would install next under the scenario (`null`: nothing). The hypothetical
    /// baseline shows as `KB000000`.
    pub next_after: Option<ReleaseRef>,
    /// Its next install would reboot it, and did not before.
    pub newly_reboots: bool,
    /// Its first maintenance window at or after the scenario's instant (`null`: none).
    pub window: Option<WindowView>,
}

/// A rollout the scenario touches.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatIfRollout {
    /// The rollout.
    pub rollout_id: Uuid,
    /// Its release.
    pub release_id: Uuid,
    /// `running`, `paused` or `halted`.
    pub state: String,
    /// What would happen to it, in words.
    pub change: String,
}

/// The answer of `POST /v1/what-if`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatIfView {
    /// The scenario, in words.
    pub scenario: String,
    /// The instant looked at: the baseline's release (or now, when later), now for a withdrawal.
    pub at: DateTime<Utc>,
    /// Machines in the fleet.
    pub machines: i64,
    /// Machines whose next install changes.
    pub changed: i64,
    /// Machines whose next install would now reboot them.
    pub newly_rebooting: i64,
    /// The fleet's reboots this year now.
    pub reboots_before: RebootsView,
    /// The fleet's reboots this year under the scenario.
    pub reboots_after: RebootsView,
    /// The first `limit` machines that change, by id.
    pub items: Vec<WhatIfMachine>,
    /// Unfinished rollouts it touches.
    pub rollouts: Vec<WhatIfRollout>,
}

/// The second Tuesday of `month` at 18:00 UTC, when Microsoft's releases come out.
fn patch_tuesday(month: Month) -> DateTime<Utc> {
    let first = NaiveDate::from_ymd_opt(month.year(), month.month(), 1).unwrap_or_default();
    let to_tuesday = (7 + Weekday::Tue.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
    let day = first + Duration::days(i64::from(to_tuesday) + 7);
    day.and_hms_opt(18, 0, 0).unwrap_or_default().and_utc()
}

/// The scenario of a request, in domain terms and in words.
fn scenario(request: &WhatIfRequest, catalog: &[Release], now: DateTime<Utc>) -> (Scenario, String) {
    match *request {
        WhatIfRequest::UnplannedBaseline { os, month, released_at } => {
            let released_at = released_at.unwrap_or_else(|| patch_tuesday(month).max(now));
            let words =
                format!("an unplanned baseline of {} for {month}, out at {released_at}", <&str>::from(os));
            (Scenario::UnplannedBaseline { os, month, released_at }, words)
        }
        WhatIfRequest::HotpatchWithdrawn { release_id } => {
            let kb = catalog.iter().find(|r| r.id == release_id).map(|r| r.spec.kb.to_string());
            let words = format!("the hotpatch {} withdrawn", kb.unwrap_or_else(|| release_id.to_string()));
            (Scenario::HotpatchWithdrawn { release_id }, words)
        }
    }
}

fn refused(e: WhatIfError) -> AppError {
    match e {
        WhatIfError::Refused(v) => crate::catalog::releases::refused(v),
        WhatIfError::UnknownRelease(_) => AppError::NotFound(e.to_string()),
        WhatIfError::NotAHotpatch(_) => AppError::field("release_id", e.to_string()),
    }
}

/// What `request` would do to the fleet, listing at most `limit` machines that change.
pub async fn what_if(app: &App, request: &WhatIfRequest, limit: usize) -> Result<WhatIfView, AppError> {
    let now = app.clock.now();
    let rule = &app.settings.calendar;
    let (_, catalog) = app.status_catalog.catalog_now(&app.pool).await?;
    let (scenario, words) = scenario(request, &catalog, now);
    let (after, at) = scenario_catalog(&catalog, &scenario, rule, now).map_err(refused)?;

    // The whole fleet by classes the rules judge alike: one scan.
    let mut view = WhatIfView {
        scenario: words,
        at,
        machines: 0,
        changed: 0,
        newly_rebooting: 0,
        reboots_before: RebootsView { year: at.year(), ..Default::default() },
        reboots_after: RebootsView { year: at.year(), ..Default::default() },
        items: Vec::new(),
        rollouts: Vec::new(),
    };
    for c in status::fleet_classes(&mut *app.pool.acquire().await?, &GroupBy::Nothing).await? {
        let takes =
            hotpatch_domain::takes_hotpatches(c.hotpatch_enabled, c.eligible, c.platform, c.enrollment);
        let state = MachineState {
            hotpatch: takes,
            current_baseline: c.current_baseline_id,
            latest_installed: c.latest_installed_id,
            reboot_pending: c.reboot_pending,
        };
        let cmp = compare(&scenario, &catalog, &after, c.os, &state, rule, at);
        view.machines += c.machines;
        view.changed += if cmp.changed() { c.machines } else { 0 };
        view.newly_rebooting += if cmp.newly_reboots() { c.machines } else { 0 };
        view.reboots_before.add(&cmp.reboots_before, c.machines);
        view.reboots_after.add(&cmp.reboots_after, c.machines);
    }
    if view.changed > 0 {
        view.items = changed_machines(app, &scenario, &catalog, &after, at, limit).await?;
    }
    view.rollouts = touched_rollouts(app, &scenario, &catalog).await?;
    Ok(view)
}

/// The first `limit` machines (by id) whose next install changes, with their window.
async fn changed_machines(
    app: &App,
    scenario: &Scenario,
    before: &[Release],
    after: &[Release],
    at: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<WhatIfMachine>, AppError> {
    let mut items = Vec::new();
    let mut cursor = None;
    while items.len() < limit {
        let page = machines::list(&app.pool, &MachineFilter::default(), cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        let ids: Vec<Uuid> = page.iter().map(|m| m.id).collect();
        let names: HashMap<Uuid, &str> = page.iter().map(|m| (m.id, m.spec.name.as_str())).collect();
        let mut inputs = status::inputs(&app.pool, &ids).await?;
        inputs.sort_unstable_by_key(|i| i.id);
        for i in inputs {
            let takes =
                hotpatch_domain::takes_hotpatches(i.hotpatch_enabled, i.eligible, i.platform, i.enrollment);
            let state = MachineState {
                hotpatch: takes,
                current_baseline: i.current_baseline_id,
                latest_installed: i.latest_installed_id,
                reboot_pending: i.reboot_pending,
            };
            let cmp = compare(scenario, before, after, i.os, &state, &app.settings.calendar, at);
            if !cmp.changed() {
                continue;
            }
            let configuration = i.configuration.as_ref().map(|c| (c.id, &c.configuration, c.matched));
            let window = windows_of(&applied_from(&app.settings, &i.timezone, configuration), at, 1)
                .into_iter()
                .next();
            let name = names.get(&i.id).map(|n| (*n).to_owned()).unwrap_or_default();
            items.push(WhatIfMachine {
                machine_id: i.id,
                name,
                next_before: find(before, cmp.before.next_release.map(|n| n.release_id)),
                next_after: find(after, cmp.after.next_release.map(|n| n.release_id)),
                newly_reboots: cmp.newly_reboots(),
                window,
            });
            if items.len() == limit {
                break;
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(items)
}

/// The unfinished rollouts the scenario touches: those of the withdrawn hotpatch, or of the
/// baseline's OS.
async fn touched_rollouts(
    app: &App,
    scenario: &Scenario,
    catalog: &[Release],
) -> Result<Vec<WhatIfRollout>, AppError> {
    let mut out = Vec::new();
    for state in [RolloutState::Running, RolloutState::Paused, RolloutState::Halted] {
        for r in crate::rollouts::view::list(app, Some(state), None, 1000).await? {
            let release = catalog.iter().find(|x| x.id == r.release_id);
            let change = match (scenario, release) {
                (Scenario::HotpatchWithdrawn { release_id }, _) if *release_id == r.release_id => {
                    "it rolls out the withdrawn hotpatch: cancel it (its queued installs end)".to_owned()
                }
                (Scenario::UnplannedBaseline { os, .. }, Some(x)) if x.spec.os == *os => {
                    if r.automatic && app.settings.automatic_rollouts {
                        "publishing the baseline cancels this automatic rollout and starts the baseline's, \
                         which gives its machines what they still need"
                            .to_owned()
                    } else {
                        "its machines that take hotpatches need the new baseline (with a reboot) before \
                         any later hotpatch; the rollout goes on with what it planned"
                            .to_owned()
                    }
                }
                _ => continue,
            };
            out.push(WhatIfRollout { rollout_id: r.id, release_id: r.release_id, state: r.state, change });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tuesday_is_the_second_tuesday() {
        let cases = [((2025, 1), 14), ((2025, 4), 8), ((2026, 12), 8), ((2026, 9), 8), ((2025, 10), 14)];
        for ((y, m), day) in cases {
            let t = patch_tuesday(Month::new(y, m).unwrap());
            assert_eq!((t.day(), t.weekday()), (day, Weekday::Tue), "{y}-{m}");
        }
    }
}
