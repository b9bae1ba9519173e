//! The machine list (`/machines`): filters (name or its beginning, region, OS, label, hotpatch
//! status), a page of machines with their patch status, and a link to the next page (cursor:
//! the last id). One filtered query, as `GET /v1/machines` makes it.

use axum::extract::{RawQuery, State};
use hotpatch_app::fleet::{self, MachineFilter, MachineView, NameMatch};
use hotpatch_domain::validation::{is_identifier, is_label_key, is_label_value};
use hotpatch_domain::{HotpatchStatus, OsVersion};
use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ConsoleError;
use crate::layout::{badge, enc, notice, shell, Nav};
use crate::session::SignedIn;
use crate::Host;

/// Machines on a page.
const PAGE: i64 = 50;

/// The filters as typed, to refill the form and build the next page's link.
#[derive(Debug, Default)]
struct Typed {
    name: String,
    region: String,
    os: String,
    label: String,
    status: String,
    after: Option<Uuid>,
}

fn typed(raw: Option<&str>) -> Typed {
    let mut t = Typed::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let v = v.trim().to_owned();
        match k.as_ref() {
            "name" => t.name = v,
            "region" => t.region = v,
            "os" => t.os = v,
            "label" => t.label = v,
            "status" | "hotpatch_status" => t.status = v,
            "after" => t.after = v.parse().ok(),
            _ => {}
        }
    }
    t
}

fn filter(t: &Typed) -> Result<MachineFilter, String> {
    let mut f = MachineFilter::default();
    if !t.name.is_empty() {
        // What one types is the beginning of a name (a trailing `*` says so too).
        f.name = Some(NameMatch::Prefix(t.name.trim_end_matches('*').to_owned()));
    }
    if !t.region.is_empty() {
        if !is_identifier(&t.region, 64) {
            return Err("a region is 1–64 lower-case letters, digits or dashes".to_owned());
        }
        f.region = Some(t.region.clone());
    }
    if !t.os.is_empty() {
        f.os = Some(
            t.os.parse::<OsVersion>().map_err(|_| format!("'{}' is not an OS this service knows", t.os))?,
        );
    }
    if !t.status.is_empty() {
        f.hotpatch_status = Some(
            t.status
                .parse::<HotpatchStatus>()
                .map_err(|_| format!("'{}' is not a hotpatch status", t.status))?,
        );
    }
    if !t.label.is_empty() {
        let (k, v) = t
            .label
            .split_once(':')
            .filter(|(k, v)| is_label_key(k) && is_label_value(v))
            .ok_or_else(|| format!("'{}' is not a label of the form key:value", t.label))?;
        f.labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(f)
}

/// A machine of the page with its patch status (`null` when it has none).
type Listed = (MachineView, Value);

/// A page of machines and whether another follows.
async fn find<H: Host>(host: &H, t: &Typed, f: &MachineFilter) -> Result<(Vec<Listed>, bool), ConsoleError> {
    let mut items = fleet::list(host.app(), f, t.after, PAGE, true).await?;
    let more = items.len() as i64 > PAGE;
    items.truncate(PAGE as usize);
    let listed = items
        .into_iter()
        .map(|m| {
            let s = m
                .patch_status
                .as_deref()
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or(Value::Null);
            (m.machine, s)
        })
        .collect();
    Ok((listed, more))
}

/// `GET /machines`.
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let t = typed(raw.as_deref());
    let (items, more, error) = match filter(&t) {
        Ok(f) => {
            let (items, more) = find(&host, &t, &f).await?;
            (items, more, None)
        }
        Err(e) => (vec![], false, Some(e)),
    };
    let next = items.last().filter(|_| more).map(|(m, _)| {
        format!(
            "/machines?name={}&region={}&os={}&label={}&status={}&after={}",
            enc(&t.name),
            enc(&t.region),
            enc(&t.os),
            enc(&t.label),
            enc(&t.status),
            m.id
        )
    });
    let body = html! {
        form.filters method="get" action="/machines" role="search" {
            label { "Name (or its beginning)" input type="search" name="name" value=(t.name)
                hx-get="/machines" hx-trigger="input changed delay:400ms" hx-target="#results" hx-select="#results"
                hx-swap="outerHTML" hx-include="closest form" hx-push-url="true"; }
            label { "Region" input name="region" value=(t.region) placeholder="westeurope" size="12"; }
            label { "OS" select name="os" {
                option value="" { "any" }
                @for os in ["windows_server_2022", "windows_server_2025"] { option value=(os) selected[t.os == os] { (os) } }
            } }
            label { "Label" input name="label" value=(t.label) placeholder="env:prod" size="12"; }
            label { "Hotpatch status" select name="status" {
                option value="" { "any" }
                @for s in ["enabled", "needs_baseline", "not_eligible", "disabled"] { option value=(s) selected[t.status == s] { (s.replace('_', " ")) } }
            } }
            button type="submit" { "Filter" }
        }
        div id="results" {
            (notice(error.as_deref(), true))
            @if items.is_empty() && error.is_none() { p { "No machine matches." } }
            @else {
                div.table-wrap { table {
                    caption.muted { (items.len()) " machines on this page" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Hotpatch" } th scope="col" { "Compliance" }
                        th scope="col" { "Reboot" } th scope="col" { "Agent" } th scope="col" .hide-narrow { "OS" }
                        th scope="col" .hide-narrow { "Region" } th scope="col" .hide-narrow { "Labels" }
                    } }
                    tbody { @for (m, s) in &items { (row(m, s)) } }
                } }
            }
            nav.pager aria-label="Pages" {
                @if t.after.is_some() { a href="/machines" { "First page" } }
                @if let Some(next) = next { a href=(next) rel="next" { "Next page" } }
            }
        }
    };
    Ok(shell("Machines", &who, Nav::Machines, body))
}

fn row(v: &MachineView, status: &Value) -> Markup {
    let compliant = match status["update_compliance"].as_array().zip(status["recommended_updates"].as_array())
    {
        _ if status["last_assessment_at"].is_null() => "unknown",
        Some((other, rec)) if other.is_empty() && rec.is_empty() => "compliant",
        Some(_) => "non_compliant",
        None => "unknown",
    };
    let status_word: &'static str = v.hotpatch_status.into();
    let os: &'static str = v.spec.os.into();
    html! {
        tr {
            th scope="row" { a href=(format!("/machines/{}", v.id)) { (v.spec.name) } }
            td { (badge(status_word)) }
            td { (badge(compliant)) }
            td { @if status["reboot_pending"].as_bool() == Some(true) { "pending" } @else { "—" } }
            td { @match status["agent"]["connected"].as_bool() {
                Some(true) => (badge("connected")), Some(false) => (badge("lost")), None => span.muted { "none" },
            } }
            td.hide-narrow { (os) }
            td.hide-narrow { (v.spec.region) }
            td.hide-narrow { @for (k, val) in &v.spec.labels { code { (k) "=" (val) } " " } }
        }
    }
}
