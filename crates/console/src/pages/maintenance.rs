//! Maintenance configurations: the list (`/maintenance`), the form to create (`/maintenance/new`)
//! or edit one (`/maintenance/{id}`), and, as the operator types, its check
//! (`POST /maintenance/check`: field errors, the DST warnings of the next 12 months and the next
//! windows) — the same parse the API runs at write, and the pure window rules.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use hotpatch_app::schedules::{self, ConfigurationView};
use hotpatch_domain::schedule::ConfigurationSpec;
use hotpatch_domain::Role;
use hotpatch_scheduler::windows::{dst_warnings, next_windows, Schedule, Tz};
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::{app_status, ConsoleError};
use crate::layout::{csrf, local, notice, shell, utc, Nav};
use crate::session::{Posted, SignedIn};
use crate::Host;

const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
/// Windows previewed.
const PREVIEW: usize = 5;

/// `GET /maintenance`.
pub async fn page<H: Host>(State(host): State<H>, who: SignedIn) -> Result<Markup, ConsoleError> {
    let items = schedules::list(host.app(), None, 1000).await?;
    let body = html! {
        @if who.may(Role::Operator) { p { a.button href="/maintenance/new" { "New configuration" } } }
        @if items.is_empty() { p { "No maintenance configuration: every machine uses the default off-peak window (01:00 local for 4 hours, daily)." } }
        @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "When" } th scope="col" { "Time zone" } th scope="col" { "Scope" } } }
                tbody { @for c in &items {
                    @let v = serde_json::to_value(&c.spec).unwrap_or(Value::Null);
                    tr {
                        th scope="row" { a href=(format!("/maintenance/{}", c.id)) { (c.spec.name()) } }
                        td { (summary(&v)) }
                        td { (v["timezone"].as_str().unwrap_or("each machine's own")) }
                        td { (scope_words(&v["scope"])) }
                    }
                } }
            } }
        }
    };
    Ok(shell("Maintenance configurations", &who, Nav::Maintenance, body))
}

fn summary(v: &Value) -> String {
    let r = &v["recurrence"];
    let every = match r["interval"].as_i64() {
        Some(n) if n > 1 => format!("every {n} {}", r["frequency"].as_str().unwrap_or_default()),
        _ => r["frequency"].as_str().unwrap_or_default().to_owned(),
    };
    format!(
        "{every}, {} for {}",
        v["start_time"].as_str().unwrap_or_default(),
        v["duration"].as_str().unwrap_or_default()
    )
}

fn scope_words(s: &Value) -> String {
    let mut parts = vec![];
    if let Some(l) = s["labels"].as_object().filter(|l| !l.is_empty()) {
        parts.push(
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if let Some(r) = s["regions"].as_array().filter(|r| !r.is_empty()) {
        parts.push(r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    }
    if let Some(m) = s["machine_ids"].as_array().filter(|m| !m.is_empty()) {
        parts.push(format!("{} machines", m.len()));
    }
    if parts.is_empty() {
        "nothing yet".to_owned()
    } else {
        parts.join(" · ")
    }
}

fn form(who: &SignedIn, action: &str, v: &Value) -> Markup {
    let r = &v["recurrence"];
    let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
    let n = |x: &Value| x.as_i64().map(|n| n.to_string()).unwrap_or_default();
    let days: Vec<&str> = r["days_of_week"]
        .as_array()
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let labels = v["scope"]["labels"]
        .as_object()
        .map(|l| l.iter().map(|(k, x)| format!("{k}={}", s(x))).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let regions = v["scope"]["regions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    html! {
        form.stack method="post" action=(action) hx-post="/maintenance/check" hx-trigger="input delay:500ms, change, load"
            hx-target="#check" hx-swap="innerHTML" {
            (csrf(who))
            label for="name" { "Name" } input id="name" name="name" required value=(s(&v["name"]));
            label for="frequency" { "Repeats" }
            select id="frequency" name="frequency" { @for f in ["daily", "weekly", "monthly"] { option value=(f) selected[s(&r["frequency"]) == f] { (f) } } }
            label for="interval" { "Every (days, weeks or months)" } input id="interval" name="interval" type="number" min="1" value=(n(&r["interval"]));
            fieldset { legend { "On (weekly)" }
                @for d in DAYS { label { input type="checkbox" name="days_of_week" value=(d) checked[days.contains(&d)]; " " (d) } " " }
            }
            label for="day_of_month" { "Day of the month (monthly; -1: the last day)" } input id="day_of_month" name="day_of_month" type="number" min="-1" max="31" value=(n(&r["day_of_month"]));
            label for="nth_week" { "Or the nth weekday (monthly): week 1–4, or -1 for the last" }
            input id="nth_week" name="nth_week" type="number" min="-1" max="4" value=(n(&r["nth_weekday"]["week"]));
            select name="nth_day" aria-label="Weekday of the nth weekday" { option value="" { "—" } @for d in DAYS { option value=(d) selected[s(&r["nth_weekday"]["day"]) == d] { (d) } } }
            label for="offset_days" { "Days after that (e.g. 4: Saturday after Patch Tuesday)" } input id="offset_days" name="offset_days" type="number" min="-30" max="30" value=(n(&r["offset_days"]));
            label for="start_time" { "Starts at (local, HH:MM)" } input id="start_time" name="start_time" required pattern="[0-2][0-9]:[0-5][0-9]" value=(s(&v["start_time"]));
            label for="duration" { "Lasts (ISO 8601, 30 minutes to 24 hours)" } input id="duration" name="duration" required value=(s(&v["duration"])) placeholder="PT3H";
            label for="timezone" { "Time zone (IANA; empty: each machine's own)" } input id="timezone" name="timezone" value=(s(&v["timezone"])) placeholder="Europe/Berlin";
            label for="reboot" { "Reboot" } select id="reboot" name="reboot" { @for x in ["if_required", "never", "always"] { option value=(x) selected[s(&v["reboot"]) == x] { (x.replace('_', " ")) } } }
            label for="labels" { "Scope: machines with the labels (key=value, …)" } input id="labels" name="labels" value=(labels);
            label for="regions" { "Scope: regions (comma-separated)" } input id="regions" name="regions" value=(regions);
            div id="check" aria-live="polite" {}
            p { button type="submit" id="save" { "Save" } }
        }
    }
}

fn csv(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The configuration's JSON (as the API takes it) from the form.
fn body(p: &Posted) -> Result<Value, String> {
    let num = |k: &str| {
        p.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("{} must be a whole number", k.replace('_', " "))))
            .transpose()
    };
    let mut recurrence = Map::new();
    recurrence.insert("frequency".into(), json!(p.get("frequency").unwrap_or("daily")));
    if let Some(i) = num("interval")? {
        recurrence.insert("interval".into(), json!(i));
    }
    let days = p.all("days_of_week");
    if !days.is_empty() {
        recurrence.insert("days_of_week".into(), json!(days));
    }
    if let Some(d) = num("day_of_month")? {
        recurrence.insert("day_of_month".into(), json!(d));
    }
    if let (Some(w), Some(d)) = (num("nth_week")?, p.get("nth_day")) {
        recurrence.insert("nth_weekday".into(), json!({"week": w, "day": d}));
    }
    if let Some(o) = num("offset_days")? {
        recurrence.insert("offset_days".into(), json!(o));
    }
    let mut labels = Map::new();
    for l in csv(p.get("labels")) {
        let (k, v) = l.split_once('=').ok_or(format!("'{l}' is not key=value"))?;
        labels.insert(k.trim().to_owned(), json!(v.trim()));
    }
    Ok(json!({
        "name": p.get("name").unwrap_or_default(), "recurrence": recurrence,
        "start_time": p.get("start_time").unwrap_or_default(), "duration": p.get("duration").unwrap_or_default(),
        "timezone": p.get("timezone"), "reboot": p.get("reboot").unwrap_or("if_required"),
        "scope": { "labels": labels, "regions": csv(p.get("regions")) },
    }))
}

fn spec(p: &Posted) -> Result<ConfigurationSpec, String> {
    serde_json::from_value(body(p)?).map_err(|e| format!("the form is not valid: {e}"))
}

/// `POST /maintenance/check`: a fragment for the form — what is wrong, or the DST warnings and the next windows.
pub async fn check<H: Host>(State(host): State<H>, posted: Posted) -> Result<Markup, ConsoleError> {
    let parsed = spec(&posted).and_then(|s| schedules::parse(s).map_err(|e| app_status(&e).1));
    let c = match parsed {
        Ok(c) => c,
        Err(e) => return Ok(html! { p.error { (e) } }),
    };
    let now = host.app().clock.now();
    let zone: Option<Tz> = posted.get("timezone").and_then(|z| z.parse().ok());
    let schedule = Schedule::of_configuration(&c, zone.unwrap_or(Tz::UTC));
    let warnings = dst_warnings(&schedule, now, 12);
    let windows = next_windows(&schedule, now, PREVIEW);
    Ok(html! {
        @if zone.is_none() { p.muted { "No time zone: each machine reads it on its own clock (shown here in UTC); the DST warnings for the machines in scope come when it is saved." } }
        @if warnings.is_empty() { p.notice { "No DST change touches its windows in the next 12 months." } }
        @else { div.warn role="status" { p { "Daylight saving time:" } ul { @for w in &warnings { li { (w.message) } } } } }
        h3 { "Next windows" }
        ul { @for w in &windows { li { (local(w.start_local)) " → " (local(w.end_local)) " · " (utc(w.start)) @for n in &w.notes { " · " (n) } } } }
    })
}

fn shown(who: &SignedIn, view: &ConfigurationView, message: Option<&str>) -> Markup {
    let v = serde_json::to_value(&view.spec).unwrap_or(Value::Null);
    html! {
        (notice(message, false))
        @if let Some(w) = view.warnings.as_ref().filter(|w| !w.is_empty()) {
            div.warn role="status" { p { "Daylight saving time:" } ul { @for m in w { li { (m) } } } }
        }
        @if who.may(Role::Operator) { (form(who, &format!("/maintenance/{}", view.id), &v)) }
        @else { p { (summary(&v)) } p { "Scope: " (scope_words(&v["scope"])) } }
    }
}

/// `GET /maintenance/new` (operator).
pub async fn new<H: Host>(State(_host): State<H>, who: SignedIn) -> Result<Markup, ConsoleError> {
    who.require(Role::Operator)?;
    let blank = json!({"recurrence": {"frequency": "weekly", "interval": 1, "days_of_week": ["saturday"]}, "start_time": "02:00", "duration": "PT3H", "reboot": "if_required"});
    Ok(shell("New maintenance configuration", &who, Nav::Maintenance, form(&who, "/maintenance", &blank)))
}

/// `POST /maintenance` (operator): creates it and shows it with its DST warnings.
pub async fn create<H: Host>(State(host): State<H>, posted: Posted) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let outcome = match spec(&posted) {
        Ok(s) => schedules::create(host.app(), s).await.map_err(|e| app_status(&e).1),
        Err(e) => Err(e),
    };
    Ok(after_save(&posted, outcome, "New maintenance configuration", "/maintenance"))
}

/// The page after a create or a save: the configuration as saved, or the form again as posted
/// with what was wrong (`title` and `action` are the form's).
fn after_save(
    posted: &Posted,
    outcome: Result<ConfigurationView, String>,
    title: &str,
    action: &str,
) -> Response {
    let who = &posted.who;
    match outcome {
        Ok(view) => {
            shell(view.spec.name(), who, Nav::Maintenance, shown(who, &view, Some("Saved."))).into_response()
        }
        Err(e) => {
            let v = body(posted).unwrap_or(Value::Null);
            shell(title, who, Nav::Maintenance, html! { (notice(Some(&e), true)) (form(who, action, &v)) })
                .into_response()
        }
    }
}

fn config_id(raw: &str) -> Result<Uuid, ConsoleError> {
    raw.parse().map_err(|_| ConsoleError::BadRequest(format!("'{raw}' is not a configuration id")))
}

/// `GET /maintenance/{id}`.
pub async fn edit<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let view = schedules::get(host.app(), config_id(&id)?).await?;
    Ok(shell(view.spec.name(), &who, Nav::Maintenance, shown(&who, &view, None)))
}

/// `POST /maintenance/{id}` (operator): saves the form's fields over the configuration.
pub async fn save<H: Host>(
    State(host): State<H>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let id = config_id(&id)?;
    let outcome = match body(&posted) {
        Ok(Value::Object(map)) => schedules::patch(host.app(), id, map).await.map_err(|e| app_status(&e).1),
        Ok(_) => Err("the form is not valid".to_owned()),
        Err(e) => Err(e),
    };
    Ok(after_save(&posted, outcome, "Maintenance configuration", &format!("/maintenance/{id}")))
}
