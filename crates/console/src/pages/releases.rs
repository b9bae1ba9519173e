//! Releases and the calendar (`/releases`): each OS's year as baseline and hotpatch months
//! (planned or unplanned, published or projected, superseded), and the catalog's releases.

use axum::extract::{RawQuery, State};
use chrono::Datelike as _;
use hotpatch_app::catalog::{self, ReleaseFilter};
use hotpatch_domain::OsVersion;
use maud::{html, Markup};

use crate::error::ConsoleError;
use crate::layout::{badge, shell, utc, Nav};
use crate::session::SignedIn;
use crate::Host;

const SYSTEMS: [OsVersion; 2] = [OsVersion::WindowsServer2022, OsVersion::WindowsServer2025];

/// `GET /releases` (`?year=`, default the service clock's year).
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let app = host.app();
    let year = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "year")
        .and_then(|(_, v)| v.parse::<i32>().ok())
        .filter(|y| (2000..=2100).contains(y))
        .unwrap_or_else(|| app.clock.now().year());
    let mut calendars = Vec::new();
    for os in SYSTEMS {
        calendars.push(catalog::calendar(app, os, year).await?);
    }
    let mut releases = catalog::list_releases(app, &ReleaseFilter::default(), None, 1000).await?;
    releases.reverse();
    let body = html! {
        nav.pager aria-label="Years" {
            a href=(format!("/releases?year={}", year - 1)) { "← " (year - 1) }
            strong { (year) }
            a href=(format!("/releases?year={}", year + 1)) { (year + 1) " →" }
        }
        @for c in &calendars {
            @let os: &'static str = c.os.into();
            h2 { "Calendar " (year) ": " (os) }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Month" } th scope="col" { "Kind" } th scope="col" { "Planned" } th scope="col" { "Status" }
                    th scope="col" { "Release" } th scope="col" { "Reboot" } } }
                tbody { @for m in &c.months {
                    @let kind: &'static str = m.kind.into();
                    @let status = serde_json::to_value(m.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                    tr {
                        td { (m.month.to_string()) } td { (kind) } td { @if m.planned { "planned" } @else { "unplanned" } }
                        td { (badge(&status)) }
                        td { @match &m.release { Some(r) => { (serde_json::to_value(r).ok().and_then(|v| v["kb"].as_str().map(str::to_owned)).unwrap_or_default()) }, None => "—" } }
                        td { @if m.reboot_required { "yes" } @else { "no" } }
                    }
                } }
            } }
        }
        h2 { "Releases" }
        @if releases.is_empty() { p { "The catalog is empty." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Month" } th scope="col" { "OS" } th scope="col" { "Kind" } th scope="col" { "KB" }
                    th scope="col" { "Build" } th scope="col" { "Released" } th scope="col" { "State" } } }
                tbody { @for r in &releases {
                    @let os: &'static str = r.spec.os.into();
                    @let kind: &'static str = r.spec.kind.into();
                    tr {
                        td { (r.spec.month.to_string()) } td { (os) } td { (kind) @if !r.spec.planned { " (unplanned)" } }
                        td { (r.spec.kb.to_string()) } td { (r.spec.build.to_string()) } td { (utc(r.spec.released_at)) }
                        td { @if r.superseded_by.is_some() { (badge("superseded")) } @else { (badge("published")) } }
                    }
                } }
            } }
        }
    };
    Ok(shell("Releases and calendar", &who, Nav::Releases, body))
}
