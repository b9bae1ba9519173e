//! `GET /v1/machines/{id}/windows`: a machine's next maintenance windows, from the
//! configuration that applies to it (machine id > label > region, then the oldest) or its
//! default off-peak window, in its own zone unless the configuration has one; a configuration's
//! own windows; both as iCalendar, with a bearer token or through a calendar feed's URL.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_app::schedules::feeds::{self, FeedTarget};
use hotpatch_app::schedules::windows::{self, WindowSource, Windows, DEFAULT_COUNT, MAX_COUNT};
use hotpatch_scheduler::windows::{next_windows, Window};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(machine_windows))
        .routes(routes!(machine_calendar))
        .routes(routes!(configuration_calendar))
        .routes(routes!(configuration_windows))
        .routes(routes!(feed_calendar))
}

fn query(raw: Option<&str>) -> Result<(Option<DateTime<Utc>>, usize), ApiError> {
    let (mut from, mut count) = (None, DEFAULT_COUNT);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "from" => {
                from = Some(
                    hotpatch_domain::time::parse_instant(&v)
                        .ok_or_else(|| ApiError::bad_param("from", hotpatch_domain::time::EXPECTED))?,
                )
            }
            "count" => {
                count = v
                    .parse::<usize>()
                    .ok()
                    .filter(|c| (1..=MAX_COUNT).contains(c))
                    .ok_or_else(|| ApiError::bad_param("count", format!("must be 1–{MAX_COUNT}")))?
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: from, count)",
                ))
            }
        }
    }
    Ok((from, count))
}

/// The machine's next maintenance windows.
#[utoipa::path(get, path = "/v1/machines/{id}/windows", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant (years 0001–9999), default now; a window in progress then comes first"),
        ("count" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1–100, default 5")),
    responses((status = 200, description = "The next windows", body = Windows),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn machine_windows(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Windows>, ApiError> {
    let (from, count) = query(raw.as_deref())?;
    Ok(Json(Windows { items: windows::of_machine(&state, id, from, count).await? }))
}

/// The machine's next maintenance windows as an iCalendar (RFC 5545, times in UTC).
#[utoipa::path(get, path = "/v1/machines/{id}/calendar.ics", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant (years 0001–9999), default now"),
        ("count" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1–100, default 5")),
    responses((status = 200, description = "text/calendar", content_type = "text/calendar", body = String),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn machine_calendar(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    machine_ics(&state, id, raw.as_deref()).await
}

/// A machine's calendar: what its bearer endpoint and its feeds serve.
async fn machine_ics(state: &AppState, id: Uuid, raw: Option<&str>) -> Result<Response, ApiError> {
    let (from, count) = query(raw)?;
    let now = state.clock.now();
    let a = windows::machine_schedule(state, id).await?;
    let summary = match a.source {
        WindowSource::DefaultOffPeak => "Maintenance window (default off-peak)".to_owned(),
        WindowSource::MaintenanceConfiguration => "Maintenance window (maintenance configuration)".to_owned(),
    };
    let windows = next_windows(&a.schedule, from.unwrap_or(now), count);
    Ok(calendar(&format!("machine-{id}"), &summary, &windows, now))
}

/// A configuration's next windows as an iCalendar (RFC 5545, times in UTC); one without a
/// zone of its own is read on the UTC clock here (each machine reads it on its own).
#[utoipa::path(get, path = "/v1/maintenance-configurations/{id}/calendar.ics", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Configuration id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant (years 0001–9999), default now"),
        ("count" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1–100, default 5")),
    responses((status = 200, description = "text/calendar", content_type = "text/calendar", body = String),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such configuration", body = Problem)),
    security(("bearer" = [])))]
async fn configuration_calendar(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    configuration_ics(&state, id, raw.as_deref()).await
}

/// A configuration's calendar: what its bearer endpoint and its feeds serve.
async fn configuration_ics(state: &AppState, id: Uuid, raw: Option<&str>) -> Result<Response, ApiError> {
    let (from, count) = query(raw)?;
    let now = state.clock.now();
    let (name, schedule) = windows::configuration_schedule(state, id).await?;
    let summary = format!("Maintenance window ({name})");
    let windows = next_windows(&schedule, from.unwrap_or(now), count);
    Ok(calendar(&format!("configuration-{id}"), &summary, &windows, now))
}

/// The next windows of a maintenance configuration, as a machine's are listed; one without a
/// zone of its own is read on the UTC clock here (each machine reads it on its own).
#[utoipa::path(get, path = "/v1/maintenance-configurations/{id}/windows", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Configuration id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant (years 0001–9999), default now; a window in progress then comes first"),
        ("count" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1–100, default 5")),
    responses((status = 200, description = "The next windows", body = Windows),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such configuration", body = Problem)),
    security(("bearer" = [])))]
async fn configuration_windows(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Windows>, ApiError> {
    let (from, count) = query(raw.as_deref())?;
    Ok(Json(Windows { items: windows::of_configuration(&state, id, from, count).await? }))
}

/// A calendar feed (`POST /v1/calendar-feeds` makes one): the machine's or the configuration's
/// calendar, exactly as its bearer endpoint serves it, for calendar apps, which cannot send a
/// token. The secret in the URL is the credential; a revoked feed answers 404.
#[utoipa::path(get, path = "/v1/feeds/{file}", tag = "maintenance",
    params(("file" = String, Path, pattern = "^[0-9a-f]{64}\\.ics$", description = "`<secret>.ics`, as the feed's `url` says"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339 instant (years 0001–9999), default now"),
        ("count" = Option<usize>, Query, minimum = 1, maximum = 100, description = "1–100, default 5")),
    responses((status = 200, description = "text/calendar", content_type = "text/calendar", body = String),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 404, description = "No such feed (or revoked)", body = Problem)))]
async fn feed_calendar(
    State(state): State<AppState>,
    ApiPath(file): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let secret = file.strip_suffix(".ics").unwrap_or_default();
    match feeds::resolve(&state, secret).await? {
        FeedTarget::Machine(id) => machine_ics(&state, id, raw.as_deref()).await,
        FeedTarget::Configuration(id) => configuration_ics(&state, id, raw.as_deref()).await,
    }
}

/// An RFC 5545 calendar of windows: CRLF line ends, lines folded at 75 octets, text escaped.
fn calendar(key: &str, summary: &str, windows: &[Window], now: DateTime<Utc>) -> Response {
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//hotpatch//maintenance windows//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
    ];
    for w in windows {
        let mut description = format!(
            "{} to {} local ({})",
            w.start_local.format("%Y-%m-%d %H:%M%:z"),
            w.end_local.format("%Y-%m-%d %H:%M%:z"),
            w.timezone
        );
        for note in &w.notes {
            description.push('\n');
            description.push_str(note);
        }
        lines.extend([
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{key}-{}@hotpatch", w.start.timestamp()),
            format!("DTSTAMP:{}", stamp(now)),
            format!("DTSTART:{}", stamp(w.start)),
            format!("DTEND:{}", stamp(w.end)),
            format!("SUMMARY:{}", escape(summary)),
            format!("DESCRIPTION:{}", escape(&description)),
            "TRANSP:OPAQUE".to_owned(),
            "END:VEVENT".to_owned(),
        ]);
    }
    lines.push("END:VCALENDAR".to_owned());
    let body: String = lines.iter().map(|l| fold(l)).collect();
    ([(header::CONTENT_TYPE, "text/calendar; charset=utf-8")], body).into_response()
}

/// RFC 5545 TEXT escaping.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded so that no line exceeds 75 octets (never inside a character).
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}
