//! Operations and webhooks (`/operations`): recent operations (filtered by kind and status,
//! newest first, live), one operation's page (`/operations/{id}`, live until it ends) with its
//! per-machine results and, for operators, cancel; and the webhooks with their recent deliveries.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use hotpatch_app::operations::{self, control};
use hotpatch_app::webhooks::subscriptions;
use hotpatch_domain::operation::{OperationFilter, OperationKind, OperationStatus};
use hotpatch_domain::Role;
use maud::{html, Markup};
use uuid::Uuid;

use super::see_other;
use crate::error::ConsoleError;
use crate::layout::{badge, csrf, enc, live, shell, utc, utc_or_dash, Nav};
use crate::session::{Posted, SignedIn};
use crate::Host;

/// Operations on a page.
const PAGE: i64 = 50;
/// Results shown with their machine's name (the rest by id).
const NAMED: usize = 50;
/// Deliveries shown per webhook.
const DELIVERIES: usize = 10;

/// `GET /operations` (`?id=` opens one).
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let (mut wanted, mut filter, mut before, mut kind, mut status) =
        (None, OperationFilter::default(), None, String::new(), String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let v = v.trim().to_owned();
        match k.as_ref() {
            "id" if !v.is_empty() => wanted = Some(v),
            "kind" if !v.is_empty() => {
                filter.kind = v.parse::<OperationKind>().ok();
                kind = v;
            }
            "status" if !v.is_empty() => {
                filter.status = v.parse::<OperationStatus>().ok();
                status = v;
            }
            "before" => before = v.parse::<Uuid>().ok(),
            _ => {}
        }
    }
    if let Some(id) = wanted {
        let id: Uuid =
            id.parse().map_err(|_| ConsoleError::BadRequest(format!("'{id}' is not an operation id")))?;
        return Ok(see_other(&format!("/operations/{id}")));
    }
    let app = host.app();
    let mut recent = control::list(app, &filter, before, PAGE + 1).await?;
    let more = recent.len() as i64 > PAGE;
    recent.truncate(PAGE as usize);
    let older = recent
        .last()
        .filter(|_| more)
        .map(|o| format!("/operations?kind={}&status={}&before={}", enc(&kind), enc(&status), o.id));
    let hooks = if who.may(Role::Operator) { Some(subscriptions::list(app).await?) } else { None };
    let mut logs = Vec::new();
    for h in hooks.iter().flat_map(|l| &l.items) {
        let mut log = subscriptions::deliveries(app, h.id).await?;
        log.items.truncate(DELIVERIES);
        logs.push(log);
    }
    let body = html! {
        h2 { "Recent operations" }
        form.filters method="get" action="/operations" {
            label { "Kind" select name="kind" {
                option value="" { "any" }
                @for k in ["assess", "install", "rollback"] { option value=(k) selected[kind == k] { (k) } }
            } }
            label { "Status" select name="status" {
                option value="" { "any" }
                @for st in ["queued", "running", "succeeded", "failed", "canceled"] { option value=(st) selected[status == st] { (st) } }
            } }
            button type="submit" { "Filter" }
        }
        (live("operations-live", 15, html! {
            @if recent.is_empty() { p { "No operation yet." } } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Operation" } th scope="col" { "Kind" } th scope="col" { "Status" }
                        th scope="col" { "Machines" } th scope="col" { "Started" } th scope="col" { "Finished" } } }
                    tbody { @for o in &recent {
                        @let k: &'static str = o.kind.into();
                        @let st: &'static str = o.status.into();
                        tr {
                            th scope="row" { a href=(format!("/operations/{}", o.id)) { (short(o.id)) } }
                            td { (k) } td { (badge(st)) }
                            td { (o.machines.total) " (" (o.machines.succeeded) " succeeded, " (o.machines.failed) " failed)" }
                            td { (utc(o.created_at)) } td { (utc_or_dash(o.finished_at)) }
                        }
                    } }
                } }
            }
        }))
        nav.pager aria-label="Pages" { @if let Some(older) = older { a href=(older) rel="next" { "Older operations" } } }
        form.filters method="get" action="/operations" {
            label { "Open an operation by id" input name="id" size="38" required; }
            button type="submit" { "Open" }
        }
        h2 { "Webhooks" }
        @match &hooks {
            None => p.muted { "Webhooks are shown to operators." },
            Some(list) if list.items.is_empty() => p { "No webhook is subscribed." },
            Some(list) => @for (h, log) in list.items.iter().zip(&logs) {
                section.panel {
                    h3 { code { (h.url) } }
                    p { (h.event_types.join(", ")) @if let Some(d) = &h.description { " · " (d) } }
                    @if let Some(at) = h.disabled_at {
                        p.error { "Disabled " (utc(at)) ": " (h.disabled_reason.clone().unwrap_or_default()) }
                    }
                    @if log.items.is_empty() { p.muted { "No delivery yet." } } @else {
                        div.table-wrap { table {
                            thead { tr { th scope="col" { "Event" } th scope="col" { "State" } th scope="col" { "Attempt" }
                                th scope="col" { "Last answer" } th scope="col" { "Next attempt" } th scope="col" { "Created" } } }
                            tbody { @for d in &log.items { tr {
                                td { (d.event_type) " #" (d.event_id) } td { (badge(&d.state)) } td { (d.attempt) "/" (d.max_attempts) }
                                td { @if let Some(s) = d.last_status { (s) " " } (d.last_error.clone().unwrap_or_default()) }
                                td { (utc_or_dash(d.next_attempt_at)) } td { (utc(d.created_at)) }
                            } } }
                        } }
                    }
                }
            },
        }
    };
    Ok(shell("Operations and webhooks", &who, Nav::Operations, body).into_response())
}

/// `GET /operations/{id}`: status, counts and per-machine results, refreshed until it ends.
pub async fn operation<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id: Uuid =
        id.parse().map_err(|_| ConsoleError::BadRequest(format!("'{id}' is not an operation id")))?;
    let op = operations::get(host.app(), id, Duration::ZERO).await?;
    // Machines by name, for the first results (one primary-key read each).
    let mut names = std::collections::HashMap::new();
    for r in op.results.iter().take(NAMED) {
        if let Ok(m) = hotpatch_app::fleet::get(host.app(), r.machine_id).await {
            names.insert(r.machine_id, m.spec.name);
        }
    }
    let kind: &'static str = op.kind.into();
    let status: &'static str = op.status.into();
    let m = &op.machines;
    let body = html! {
        (live("operation-live", 5, html! {
            dl.facts {
                dt { "Kind" } dd { (kind) }
                dt { "Status" } dd id="operation-status" { (badge(status)) }
                dt { "Machines" } dd { (m.total) " in all: " (m.succeeded) " succeeded, " (m.failed) " failed, " (m.pending) " pending" }
                dt { "Started" } dd { (utc(op.created_at)) }
                dt { "Finished" } dd { (utc_or_dash(op.finished_at)) }
            }
            @for w in &op.warnings { p.warn { (w) } }
            @if who.may(Role::Operator) && !op.status.is_final() {
                div.actions {
                    form method="post" action=(format!("/operations/{id}/cancel"))
                        data-confirm="Cancel this operation? Its queued jobs are dropped; running ones finish." {
                        (csrf(&who)) button.danger type="submit" id="cancel-operation" { "Cancel queued jobs" }
                    }
                }
            }
            h2 { "Results" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Machine" } th scope="col" { "Job" } th scope="col" { "Finished" } th scope="col" { "Error" } } }
                tbody { @for r in &op.results {
                    @let state: &'static str = r.state.into();
                    tr {
                        td { a href=(format!("/machines/{}", r.machine_id)) {
                            @match names.get(&r.machine_id) { Some(n) => (n), None => (r.machine_id) }
                        } }
                        td { (badge(state)) } td { (utc_or_dash(r.finished_at)) } td { (r.error.clone().unwrap_or_default()) }
                    }
                } }
            } }
            @if op.results_truncated { p.muted { "Only the first results are listed." } }
        }))
    };
    Ok(shell(&format!("Operation {}", short(id)), &who, Nav::Operations, body))
}

/// The first block of an id, enough to tell operations apart on screen.
pub fn short(id: Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

/// `POST /operations/{id}/cancel` (operator): ends the operation's queued jobs.
pub async fn cancel<H: Host>(
    State(host): State<H>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let id: Uuid =
        id.parse().map_err(|_| ConsoleError::BadRequest(format!("'{id}' is not an operation id")))?;
    control::cancel(host.app(), id).await?;
    Ok(see_other(&format!("/operations/{id}")))
}
