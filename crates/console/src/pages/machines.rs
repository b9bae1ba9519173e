//! The machine list (`/machines`): filters (name, region, OS, label, hotpatch status), a page
//! of machines with their patch status, and a link to the next page (cursor: the last id).
//!
//! The name search reads pages of the filtered list and keeps the names that contain the text
//! (case-insensitive), at most [`NAME_SCAN`] machines deep, and says when it stopped there:
//! the store has no name filter yet (`GET /v1/machines?name=` is being added in another
//! change); when it lands, this becomes one filtered query.

use axum::extract::{RawQuery, State};
use hotpatch_app::fleet::{self, MachineFilter, MachineView};
use hotpatch_app::status;
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
/// Machines read at most by one name search (pages of 1,000).
const NAME_SCAN: i64 = 20_000;

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

/// A page of machines and whether another follows, and whether a name search stopped early.
async fn find<H: Host>(
    host: &H,
    t: &Typed,
    f: &MachineFilter,
) -> Result<(Vec<Listed>, bool, bool), ConsoleError> {
    let app = host.app();
    let parse = |raw: Option<&serde_json::value::RawValue>| {
        raw.and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or(Value::Null)
    };
    if t.name.is_empty() {
        let mut items = fleet::list(app, f, t.after, PAGE, true).await?;
        let more = items.len() as i64 > PAGE;
        items.truncate(PAGE as usize);
        let listed = items
            .into_iter()
            .map(|m| {
                let s = parse(m.patch_status.as_deref());
                (m.machine, s)
            })
            .collect();
        return Ok((listed, more, false));
    }
    let needle = t.name.to_lowercase();
    let (mut found, mut after, mut read) = (Vec::new(), t.after, 0i64);
    let (more, capped) = loop {
        let rows = fleet::list(app, f, after, 1000, false).await?;
        let more_rows = rows.len() > 1000;
        for m in rows.into_iter().take(1000) {
            read += 1;
            after = Some(m.machine.id);
            if m.machine.spec.name.to_lowercase().contains(&needle) {
                found.push(m.machine);
            }
            if found.len() as i64 > PAGE {
                break;
            }
        }
        if found.len() as i64 > PAGE {
            break (true, false);
        }
        if !more_rows {
            break (false, false);
        }
        if read >= NAME_SCAN {
            break (false, true);
        }
    };
    found.truncate(PAGE as usize);
    let ids: Vec<Uuid> = found.iter().map(|m| m.id).collect();
    let mut answers = status::answers(app, &ids).await?;
    let listed = found
        .into_iter()
        .map(|m| {
            let s = answers
                .remove(&m.id)
                .and_then(|a| serde_json::from_slice(&a.body).ok())
                .unwrap_or(Value::Null);
            (m, s)
        })
        .collect();
    Ok((listed, more, capped))
}

/// `GET /machines`.
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let t = typed(raw.as_deref());
    let (items, more, capped, error) = match filter(&t) {
        Ok(f) => {
            let (items, more, capped) = find(&host, &t, &f).await?;
            (items, more, capped, None)
        }
        Err(e) => (vec![], false, false, Some(e)),
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
            label { "Name contains" input type="search" name="name" value=(t.name)
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
            @if capped { p.warn { "The name search stopped after " (NAME_SCAN) " machines: add a region, OS or label to narrow it." } }
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
