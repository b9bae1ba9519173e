//! Rollouts: the list (`/rollouts`), the form (`/rollouts/new`), its preview before anything is
//! written (`POST /rollouts/preview`: waves, batches, windows, expected finish, overdue
//! warning), and starting it (`POST /rollouts`, then to its page).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use hotpatch_app::catalog::{self, ReleaseFilter, ReleaseView};
use hotpatch_app::rollouts::{self, PlanView, PreviewRequest, RolloutRequest, RolloutState};
use hotpatch_domain::Role;
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::see_other;
use crate::error::{app_status, ConsoleError};
use crate::layout::{badge, csrf, live, notice, shell, utc, utc_or_dash, Nav};
use crate::session::{Posted, SignedIn};
use crate::Host;

/// Rollouts on a page.
const PAGE: i64 = 50;
/// The form's fields, in the order they are carried from preview to start.
const FIELDS: [&str; 6] =
    ["release_id", "labels", "regions", "max_batch_percent", "failure_threshold_percent", "region_order"];

/// `GET /rollouts` (`?state=`, `?before=` for the next page).
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let (mut state, mut before) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "state" if !v.is_empty() => state = v.parse::<RolloutState>().ok(),
            "before" => before = v.parse::<Uuid>().ok(),
            _ => {}
        }
    }
    let mut items = rollouts::list(host.app(), state, before, PAGE + 1).await?;
    let more = items.len() as i64 > PAGE;
    items.truncate(PAGE as usize);
    let body = html! {
        @if who.may(Role::Operator) { p { a.button href="/rollouts/new" id="new-rollout" { "New rollout" } } }
        (live("rollouts-live", 15, html! {
            @if items.is_empty() { p { "No rollout yet." } } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Rollout" } th scope="col" { "State" } th scope="col" { "Machines" }
                        th scope="col" { "Started" } th scope="col" { "Expected finish" } th scope="col" { "Deadline" } } }
                    tbody { @for r in &items { tr {
                        th scope="row" { a href=(format!("/rollouts/{}", r.id)) { (super::operations::short(r.id)) }
                            @if r.automatic { " (automatic)" } }
                        td { (badge(&r.state)) @if r.overdue { " " (badge("overdue")) } }
                        td.num { (r.machine_count) }
                        td { (utc(r.created_at)) } td { (utc_or_dash(r.expected_finish)) } td { (utc(r.deadline)) }
                    } } }
                } }
            }
        }))
        nav.pager aria-label="Pages" {
            @if let Some(last) = items.last().filter(|_| more) { a href=(format!("/rollouts?before={}", last.id)) rel="next" { "Older rollouts" } }
        }
    };
    Ok(shell("Rollouts", &who, Nav::Rollouts, body))
}

async fn releases<H: Host>(host: &H) -> Result<Vec<ReleaseView>, ConsoleError> {
    let mut all = catalog::list_releases(host.app(), &ReleaseFilter::default(), None, 1000).await?;
    all.retain(|r| r.superseded_by.is_none());
    all.reverse();
    Ok(all)
}

fn form(who: &SignedIn, releases: &[ReleaseView], values: &Map<String, Value>) -> Markup {
    let v = |k: &str| values.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    html! {
        form.stack method="post" action="/rollouts/preview" {
            (csrf(who))
            label for="release_id" { "Release" }
            select id="release_id" name="release_id" required {
                @for r in releases {
                    @let os: &'static str = r.spec.os.into();
                    @let kind: &'static str = r.spec.kind.into();
                    option value=(r.id) selected[v("release_id") == r.id.to_string()] {
                        (r.spec.month.to_string()) " " (kind) " " (r.spec.kb.to_string()) " · " (os)
                    }
                }
            }
            label for="labels" { "Machines with the labels" }
            p.hint id="labels-hint" { "key=value, separated by commas; empty: every machine of the release's OS" }
            input id="labels" name="labels" value=(v("labels")) aria-describedby="labels-hint" placeholder="env=prod";
            label for="regions" { "In the regions" }
            input id="regions" name="regions" value=(v("regions")) placeholder="westeurope, northeurope";
            label for="max_batch_percent" { "Largest batch (% of a group)" }
            input id="max_batch_percent" name="max_batch_percent" type="number" min="1" max="100" value=(v("max_batch_percent")) placeholder="20";
            label for="failure_threshold_percent" { "Halt above this failure rate (%)" }
            input id="failure_threshold_percent" name="failure_threshold_percent" type="number" min="0" max="100" value=(v("failure_threshold_percent")) placeholder="10";
            label for="region_order" { "Regions first (canary), in order" }
            input id="region_order" name="region_order" value=(v("region_order")) placeholder="westcentralus";
            p { button type="submit" id="preview" { "Preview" } }
        }
    }
}

/// `GET /rollouts/new` (operator).
pub async fn new<H: Host>(State(host): State<H>, who: SignedIn) -> Result<Markup, ConsoleError> {
    who.require(Role::Operator)?;
    let releases = releases(&host).await?;
    Ok(shell("New rollout", &who, Nav::Rollouts, form(&who, &releases, &Map::new())))
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The API's request body from the form's fields (the use case checks it as it checks JSON).
fn request_body(posted: &Posted) -> Result<Value, String> {
    let release_id = posted.get("release_id").ok_or("choose a release")?;
    let mut selector = Map::new();
    let labels = list(posted.get("labels").unwrap_or_default());
    if !labels.is_empty() {
        let mut map = Map::new();
        for l in labels {
            let (k, v) =
                l.split_once('=').or_else(|| l.split_once(':')).ok_or(format!("'{l}' is not key=value"))?;
            map.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
        }
        selector.insert("labels".to_owned(), Value::Object(map));
    }
    let regions = list(posted.get("regions").unwrap_or_default());
    if !regions.is_empty() {
        selector.insert("regions".to_owned(), json!(regions));
    }
    let mut options = Map::new();
    for k in ["max_batch_percent", "failure_threshold_percent"] {
        if let Some(v) = posted.get(k) {
            let n: u32 = v.parse().map_err(|_| format!("{} must be a whole number", k.replace('_', " ")))?;
            options.insert(k.to_owned(), json!(n));
        }
    }
    let order = list(posted.get("region_order").unwrap_or_default());
    if !order.is_empty() {
        options.insert("region_order".to_owned(), json!(order));
    }
    Ok(json!({ "release_id": release_id, "selector": selector, "options": options }))
}

fn values(posted: &Posted) -> Map<String, Value> {
    FIELDS.iter().filter_map(|k| Some((k.to_string(), Value::String(posted.get(k)?.to_owned())))).collect()
}

/// `POST /rollouts/preview` (operator): the plan, and a button that starts exactly it.
pub async fn preview<H: Host>(State(host): State<H>, posted: Posted) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let releases = releases(&host).await?;
    let values = values(&posted);
    let outcome = match request_body(&posted) {
        Err(e) => Err(e),
        Ok(body) => match serde_json::from_value::<PreviewRequest>(body) {
            Err(e) => Err(format!("the form is not valid: {e}")),
            Ok(req) => rollouts::preview(host.app(), req, false).await.map_err(|e| app_status(&e).1),
        },
    };
    let who = &posted.who;
    let body = match outcome {
        Err(message) => html! { (notice(Some(&message), true)) (form(who, &releases, &values)) },
        Ok(plan) => html! {
            (plan_markup(&plan))
            form method="post" action="/rollouts" data-confirm="Start this rollout now?" {
                (csrf(who))
                @for (k, v) in &values { input type="hidden" name=(k) value=(v.as_str().unwrap_or_default()); }
                div.actions { button type="submit" id="start" { "Start this rollout" } }
            }
            details { summary { "Change the plan" } (form(who, &releases, &values)) }
        },
    };
    Ok(shell("Rollout preview", who, Nav::Rollouts, body).into_response())
}

fn plan_markup(p: &PlanView) -> Markup {
    html! {
        @if p.overdue {
            p.warn role="alert" { "Overdue: " (p.overdue_reason.clone().unwrap_or_else(|| format!("the plan finishes after the release's 30-day install deadline ({})", utc(p.deadline)))) }
        }
        dl.facts {
            dt { "Machines selected" } dd id="plan-selected" { (p.counts.selected) }
            dt { "Planned" } dd id="plan-planned" { (p.counts.planned) }
            dt { "Left out" } dd { (p.counts.unplanned)
                @for (reason, n) in &p.counts.unplanned_by_reason { " · " (n) " " (reason.replace('_', " ")) } }
            dt { "Waves, batches" } dd { (p.counts.waves) ", " (p.counts.batches) }
            dt { "First batch opens" } dd { (utc(p.start)) }
            dt { "Expected finish" } dd { (utc_or_dash(p.expected_finish)) }
            dt { "Deadline" } dd { (utc(p.deadline)) }
        }
        h2 { "Waves" }
        @for w in &p.waves {
            div.wave {
                h3 { "Wave " (w.index) ": " (w.regions.join(", ")) }
                p.muted { (utc(w.planned_start)) " → " (utc(w.planned_end)) }
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Batch" } th scope="col" { "Region" } th scope="col" { "Zone" }
                        th scope="col" { "Machines" } th scope="col" { "Windows from" } th scope="col" { "to" } } }
                    tbody { @for b in p.batches.iter().filter(|b| b.wave == w.index) { tr {
                        td { (b.index) } td { (b.region) } td { (b.zone.clone().unwrap_or_else(|| "—".to_owned())) }
                        td.num { (b.machine_count) } td { (utc(b.planned_start)) } td { (utc(b.planned_end)) }
                    } } }
                } }
            }
        }
    }
}

/// `POST /rollouts` (operator): starts the previewed rollout and shows it.
pub async fn start<H: Host>(State(host): State<H>, posted: Posted) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let body = request_body(&posted).map_err(ConsoleError::BadRequest)?;
    let req: RolloutRequest = serde_json::from_value(body)
        .map_err(|e| ConsoleError::BadRequest(format!("the form is not valid: {e}")))?;
    let detail = rollouts::start(host.app(), req, posted.who.session.token_id).await?;
    Ok(see_other(&format!("/rollouts/{}", detail.rollout.id)))
}
