//! The fleet at a glance (`/`): counts by hotpatch status, compliance, reboot pending and
//! overdue installs, as a whole and by region, OS or a label; what hotpatching saves in
//! reboots. One call of the fleet summary (one scan, no per-machine reads); refreshed live.
//!
//! The scan costs about 100 ms on a 100,000-machine fleet, and every open fleet page asks again
//! whenever the change feed says something changed (during a rollout, about every second): each
//! replica keeps the last summary of each grouping for [`SUMMARY_TTL`], so a room of dashboards
//! costs one scan per grouping every few seconds. The page says when its counts were taken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;

use axum::extract::{Query, State};
use hotpatch_app::fleet::summary::{self, FleetCounts, FleetSummary, GroupBy};
use maud::{html, Markup};
use serde::Deserialize;

use crate::error::ConsoleError;
use crate::layout::{enc, live, shell, utc, Nav};
use crate::session::SignedIn;
use crate::Host;

/// How long a replica serves a summary again before it scans the fleet anew.
pub const SUMMARY_TTL: Duration = Duration::from_secs(5);

/// The last summary of each grouping, with when it was taken (one per router, so per `App`).
#[derive(Debug, Default)]
pub struct SummaryCache {
    kept: Mutex<HashMap<String, (Instant, Arc<FleetSummary>)>>,
}

impl SummaryCache {
    fn get(&self, key: &str) -> Option<Arc<FleetSummary>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(key).filter(|(at, _)| at.elapsed() < SUMMARY_TTL).map(|(_, s)| s.clone())
    }

    fn put(&self, key: String, summary: Arc<FleetSummary>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        // Label keys are typed by people: forget everything rather than grow without bound.
        if kept.len() >= 64 {
            kept.clear();
        }
        kept.insert(key, (Instant::now(), summary));
    }
}

/// The page's query.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    /// `region`, `os` or `label:<key>`.
    group_by: Option<String>,
    /// A label key to group by (wins over `group_by`).
    label_key: Option<String>,
}

fn group_by(q: &FleetQuery) -> Result<(GroupBy, String), ConsoleError> {
    let typed = q.label_key.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|k| format!("label:{k}"));
    let raw = typed
        .as_deref()
        .or(q.group_by.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("region");
    let group = match raw {
        "region" => GroupBy::Region,
        "os" => GroupBy::Os,
        other => match other.strip_prefix("label:") {
            Some(key) if hotpatch_domain::validation::is_label_key(key) => GroupBy::Label(key.to_owned()),
            _ => {
                return Err(ConsoleError::BadRequest(format!(
                    "cannot group by '{other}': use region, os or label:<key>"
                )))
            }
        },
    };
    Ok((group, raw.to_owned()))
}

/// `GET /`.
pub async fn page<H: Host>(
    State(host): State<H>,
    Extension(cache): Extension<Arc<SummaryCache>>,
    who: SignedIn,
    Query(q): Query<FleetQuery>,
) -> Result<Markup, ConsoleError> {
    let (group, raw) = group_by(&q)?;
    let label_key = raw.strip_prefix("label:").unwrap_or_default().to_owned();
    let s = match cache.get(&raw) {
        Some(s) => s,
        None => {
            let s = Arc::new(summary::summary(host.app(), group, None).await?);
            cache.put(raw.clone(), s.clone());
            s
        }
    };
    let c = &s.counts;
    let takes = c.hotpatch_status.enabled;
    let r = &c.reboots;
    let body = html! {
        (live("fleet-live", 15, html! {
            p.muted { "As of " (utc(s.at)) "." }
            (cards(c))
            h2 { "Hotpatch benefit" }
            p {
                (takes) " of " (c.machines) " machines take hotpatches. In " (r.year) " the fleet rebooted "
                strong { (r.this_year) } " times for its updates so far, against "
                strong { (r.monthly_cumulative) } " on monthly cumulative updates: "
                strong { (r.avoided) } " reboots avoided. Over the whole year: "
                strong { (r.projected_year) } " against " strong { (r.projected_monthly_cumulative) } " ("
                strong { (r.projected_avoided) } " avoided)."
            }
            h2 id="groups" { "By " (raw) }
            div.table-wrap { table aria-labelledby="groups" {
                thead { tr {
                    th scope="col" { (raw) } th.num scope="col" { "machines" } th.num scope="col" { "hotpatch on" }
                    th.num scope="col" { "needs baseline" } th.num scope="col" { "not eligible" } th.num scope="col" { "off" }
                    th.num scope="col" { "compliant" } th.num scope="col" { "non-compliant" } th.num scope="col" { "unknown" }
                    th.num scope="col" { "reboot pending" } th.num scope="col" { "overdue" }
                } }
                tbody {
                    @for g in &s.groups {
                        tr {
                            td { @match (g.key.as_deref(), raw.as_str()) {
                                (None, _) => span.muted { "(none)" },
                                (Some(k), "region") => a href=(format!("/machines?region={}", enc(k))) { (k) },
                                (Some(k), "os") => a href=(format!("/machines?os={}", enc(k))) { (k) },
                                (Some(k), _) => a href=(format!("/machines?label={}", enc(&format!("{label_key}:{k}")))) { (k) },
                            } }
                            (row(&g.counts))
                        }
                    }
                }
            } }
        }))
        form.filters method="get" action="/" {
            label { "Group by"
                select name="group_by" {
                    option value="region" selected[raw == "region"] { "region" }
                    option value="os" selected[raw == "os"] { "OS" }
                    @if !label_key.is_empty() { option value=(raw) selected { (raw) } }
                }
            }
            label { "or by the label" input name="label_key" placeholder="env" value=(label_key); }
            button type="submit" { "Show" }
        }
    };
    Ok(shell("Fleet", &who, Nav::Fleet, body))
}

fn cards(c: &FleetCounts) -> Markup {
    let items = [
        (c.machines, "machines"),
        (c.hotpatch_status.enabled, "hotpatch on"),
        (c.hotpatch_status.needs_baseline, "need a baseline"),
        (c.hotpatch_status.not_eligible, "not eligible"),
        (c.hotpatch_status.disabled, "hotpatch off"),
        (c.compliance.compliant, "compliant"),
        (c.compliance.non_compliant, "non-compliant"),
        (c.compliance.unknown, "compliance unknown"),
        (c.reboot_pending, "reboot pending"),
        (c.overdue, "overdue installs"),
    ];
    html! {
        ul.cards aria-label="Fleet counts" {
            @for (n, label) in items {
                li.card { span.n { (n) } span.l { (label) } }
            }
        }
    }
}

fn row(c: &FleetCounts) -> Markup {
    html! {
        td.num { (c.machines) } td.num { (c.hotpatch_status.enabled) } td.num { (c.hotpatch_status.needs_baseline) }
        td.num { (c.hotpatch_status.not_eligible) } td.num { (c.hotpatch_status.disabled) }
        td.num { (c.compliance.compliant) } td.num { (c.compliance.non_compliant) } td.num { (c.compliance.unknown) }
        td.num { (c.reboot_pending) } td.num { (c.overdue) }
    }
}
