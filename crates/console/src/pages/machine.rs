//! One machine (`/machines/{id}`): eligibility with every failing rule in words, where it stands
//! in the baseline/hotpatch cycle, patch status, recommended and other updates, installed
//! updates, the last 30 days, its next windows (UTC and local, with DST notes), agent and
//! health; and the actions its viewer's role allows (assess now, install now, roll back).

use axum::extract::{Path, State};
use axum::response::Response;
use hotpatch_app::fleet::{self, history};
use hotpatch_app::operations::{assess, install, rollback, Caller};
use hotpatch_app::schedules::windows;
use hotpatch_app::status::{self, Conditional, Got};
use hotpatch_domain::Role;
use maud::{html, Markup};
use serde_json::Value;
use uuid::Uuid;

use super::see_other;
use crate::error::ConsoleError;
use crate::layout::{badge, csrf, live, local, shell, utc, utc_or_dash, Nav};
use crate::session::{Posted, SignedIn};
use crate::Host;

/// Days of history shown.
const HISTORY_DAYS: i64 = 30;
/// Windows shown.
const WINDOWS: usize = 5;

fn machine_id(raw: &str) -> Result<Uuid, ConsoleError> {
    raw.parse().map_err(|_| ConsoleError::BadRequest(format!("'{raw}' is not a machine id")))
}

/// `GET /machines/{id}`.
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = machine_id(&id)?;
    let app = host.app();
    let m = fleet::get(app, id).await?;
    let s: Value = match status::get(app, id, None, &Conditional::default()).await? {
        Got::Answer(a) => serde_json::from_slice(&a.body).unwrap_or(Value::Null),
        Got::NotModified(_) => Value::Null,
    };
    let installed = history::installed_updates(app, id).await?;
    let past = history::update_history(app, id, HISTORY_DAYS).await?;
    let next = windows::of_machine(app, id, None, WINDOWS).await?;
    let status_word: &'static str = m.hotpatch_status.into();
    let os: &'static str = m.spec.os.into();
    let body = html! {
        (actions(&who, id))
        (live("machine-live", 30, html! {
        div.cols {
            section.panel aria-labelledby="h-hotpatch" {
                h2 id="h-hotpatch" { "Hotpatch" }
                dl.facts {
                    dt { "Status" } dd { (badge(status_word)) }
                    dt { "Eligible" } dd {
                        @if m.eligibility.eligible { (badge("eligible")) @if m.eligibility.preview { " (preview)" } }
                        @else { (badge("not_eligible")) }
                    }
                }
                @if !m.eligibility.reasons.is_empty() {
                    p { "Every rule that fails:" }
                    ul.reasons { @for r in &m.eligibility.reasons { li { (r.message) } } }
                }
            }
            section.panel aria-labelledby="h-cycle" {
                h2 id="h-cycle" { "Cycle" }
                dl.facts {
                    dt { "This month" } dd { (text(&s["cycle"]["month"])) " · " (text(&s["cycle"]["kind"])) }
                    dt { "Next release" } dd { (release(&s["cycle"]["next_release"]["release"]))
                        @if s["cycle"]["next_release"]["reboot_required"].as_bool() == Some(true) { " (reboot)" } }
                    dt { "Needs a baseline" } dd { (yes_no(&s["cycle"]["needs_baseline"])) }
                    dt { "Current baseline" } dd { (release(&s["current_baseline"])) }
                    dt { "Latest installed" } dd { (release(&s["latest_installed"])) }
                    dt { "OS build" } dd { (text(&s["os_build"])) }
                }
            }
            section.panel aria-labelledby="h-status" {
                h2 id="h-status" { "Patch status" }
                dl.facts {
                    dt { "Reboot pending" } dd { (yes_no(&s["reboot_pending"])) }
                    dt { "Last assessment" } dd { (instant(&s["last_assessment_at"])) }
                    dt { "Recommended updates" } dd { (count(&s["recommended_updates"])) }
                    dt { "Other updates" } dd { (count(&s["update_compliance"])) }
                    @if let Some(r) = s["rollout"].as_object() {
                        dt { "Rollout" } dd { a href=(format!("/rollouts/{}", text(&r["id"]))) { (text(&r["state"])) } " · " (text(&r["install_state"])) }
                    }
                }
            }
            section.panel aria-labelledby="h-agent" {
                h2 id="h-agent" { "Agent and health" }
                dl.facts {
                    dt { "Agent" } dd { @match s["agent"]["connected"].as_bool() {
                        Some(true) => (badge("connected")), Some(false) => (badge("lost")), None => "no agent yet",
                    } }
                    dt { "Last seen" } dd { (instant(&s["agent"]["last_seen_at"])) }
                    dt { "Health" } dd { @if s["health"].is_object() { (badge(&text(&s["health"]["status"]))) } @else { "not reported" } }
                }
                @if let Some(checks) = s["health"]["checks"].as_array().filter(|c| !c.is_empty()) {
                    ul.reasons { @for c in checks { li { (text(&c["name"])) ": " (text(&c["status"])) " " (text(&c["detail"])) } } }
                }
            }
        }
        h2 { "Recommended updates (critical and security)" }
        (updates(&s["recommended_updates"]))
        h2 { "Other available updates" }
        (updates(&s["update_compliance"]))
        })) // live
        h2 { "Next maintenance windows" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Start (UTC)" } th scope="col" { "End (UTC)" } th scope="col" { "Start (local)" }
                th scope="col" { "End (local)" } th scope="col" { "From" } th scope="col" { "Notes" } } }
            tbody { @for w in &next { tr {
                td { (utc(w.start)) } td { (utc(w.end)) } td { (local(w.start_local)) " " (w.timezone) } td { (local(w.end_local)) }
                td { @match w.maintenance_configuration_id {
                    Some(c) => a href=(format!("/maintenance/{c}")) { "maintenance configuration" },
                    None => "default off-peak window",
                } }
                td { @for n in &w.notes { span.warn { (n) } " " } }
            } } }
        } }
        h2 { "Installed updates" }
        @if installed.items.is_empty() { p.muted { "None reported yet." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "KB" } th scope="col" { "Title" } th scope="col" { "Installed on" } } }
                tbody { @for u in &installed.items { tr {
                    td { (u.kb.to_string()) } td { (u.title.clone().unwrap_or_default()) } td { (u.installed_on.to_string()) }
                } } }
            } }
        }
        h2 { "Last " (HISTORY_DAYS) " days" }
        @if past.items.is_empty() { p.muted { "Nothing happened." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Result" } th scope="col" { "Details" } } }
                tbody { @for h in &past.items {
                    @let kind: &'static str = h.kind.into();
                    @let state: &'static str = h.state.into();
                    tr {
                        td { (utc(h.created_at)) } td { (kind) } td { (badge(state)) }
                        td {
                            @if !h.installed.is_empty() { "installed " (h.installed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) " " }
                            @if h.rebooted { "rebooted " }
                            @if let Some(e) = &h.error { span.error { (e) } }
                            @if let Some(op) = h.operation_id { a href=(format!("/operations/{op}")) { "operation" } }
                        }
                    }
                } }
            } }
        }
        h2 { "Machine" }
        dl.facts {
            dt { "OS" } dd { (os) } dt { "Region" } dd { (m.spec.region) }
            dt { "Time zone" } dd { (m.spec.timezone.to_string()) }
            dt { "Availability zone" } dd { (m.spec.availability_zone.clone().unwrap_or_else(|| "—".to_owned())) }
            dt { "Labels" } dd { @for (k, v) in &m.spec.labels { code { (k) "=" (v) } " " } }
            dt { "Registered" } dd { (utc(m.created_at)) }
        }
    };
    Ok(shell(&m.spec.name, &who, Nav::Machines, body))
}

fn actions(who: &SignedIn, id: Uuid) -> Markup {
    html! {
        @if who.may(Role::Ci) {
            div.actions aria-label="Actions" {
                form method="post" action=(format!("/machines/{id}/assess")) data-confirm="Assess this machine now?" {
                    (csrf(who)) button type="submit" id="assess" { "Assess now" }
                }
                @if who.may(Role::Operator) {
                    form method="post" action=(format!("/machines/{id}/install"))
                        data-confirm="Install updates on this machine now? It runs outside its maintenance window and may reboot." {
                        (csrf(who))
                        fieldset {
                            legend { "Install now" }
                            @for c in ["critical", "security", "update_rollup", "feature_pack", "service_pack", "definition", "tools", "updates"] {
                                label { input type="checkbox" name="classifications" value=(c) checked[c == "critical" || c == "security"]; " " (c.replace('_', " ")) } " "
                            }
                            label { "Reboot " select name="reboot" {
                                option value="if_required" { "if required" } option value="never" { "never" } option value="always" { "always" }
                            } }
                            " " button type="submit" id="install" { "Install now" }
                        }
                    }
                    form method="post" action=(format!("/machines/{id}/rollback"))
                        data-confirm="Roll this machine back to its last baseline? It uninstalls the latest update and reboots." {
                        (csrf(who)) button.danger type="submit" id="rollback" { "Roll back" }
                    }
                }
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.replace('_', " "),
        other => other.to_string(),
    }
}

fn yes_no(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    }
}

fn instant(v: &Value) -> String {
    utc_or_dash(v.as_str().and_then(|s| s.parse().ok()))
}

fn count(v: &Value) -> String {
    v.as_array().map(|a| a.len().to_string()).unwrap_or_else(|| "—".to_owned())
}

fn release(v: &Value) -> String {
    if v.is_null() {
        return "—".to_owned();
    }
    format!("{} {} {}", text(&v["month"]), text(&v["kind"]), text(&v["kb"]))
}

fn updates(v: &Value) -> Markup {
    html! {
        @match v.as_array().filter(|a| !a.is_empty()) {
            None => p.muted { "None." },
            Some(items) => div.table-wrap { table {
                thead { tr { th scope="col" { "KB" } th scope="col" { "Title" } th scope="col" { "Classification" } th scope="col" { "Reboot" } } }
                tbody { @for u in items { tr {
                    td { (text(&u["kb"])) } td { (text(&u["title"])) } td { (text(&u["classification"])) } td { (yes_no(&u["requires_reboot"])) }
                } } }
            } },
        }
    }
}

fn caller(posted: &Posted) -> Caller {
    Caller { token_id: posted.who.session.token_id, idempotency_key: None }
}

/// `POST /machines/{id}/assess` (ci and above).
pub async fn assess<H: Host>(
    State(host): State<H>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Ci)?;
    let op = assess::machine(host.app(), &caller(&posted), machine_id(&id)?).await?;
    Ok(see_other(&format!("/operations/{}", op.id)))
}

/// `POST /machines/{id}/install` (operator and above).
pub async fn install<H: Host>(
    State(host): State<H>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let body = serde_json::json!({
        "classifications": posted.all("classifications"),
        "reboot": posted.get("reboot").unwrap_or("if_required"),
    });
    let req: install::InstallRequest = serde_json::from_value(body)
        .map_err(|e| ConsoleError::BadRequest(format!("the install form is not valid: {e}")))?;
    let op = install::install_now(host.app(), &caller(&posted), machine_id(&id)?, req).await?;
    Ok(see_other(&format!("/operations/{}", op.id)))
}

/// `POST /machines/{id}/rollback` (operator and above).
pub async fn rollback<H: Host>(
    State(host): State<H>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let op = rollback::rollback(host.app(), &caller(&posted), machine_id(&id)?).await?;
    Ok(see_other(&format!("/operations/{}", op.operation.id)))
}
