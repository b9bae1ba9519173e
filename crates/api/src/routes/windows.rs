//! `GET /v1/machines/{id}/windows`: a machine's next maintenance windows, from the
//! configuration that applies to it (machine id > label > region, then the oldest) or its
//! default off-peak window, in its own zone unless the configuration has one.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, FixedOffset, Utc};
use hotpatch_scheduler::windows::{next_windows, Schedule, Window};
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::maintenance::{self, ScopeMatch};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::ApiPath;
use crate::routes::maintenance::{check, Checked, ConfigurationSpec};
use crate::AppState;

/// Most windows one request may ask for.
pub const MAX_COUNT: usize = 100;
/// Windows given when `count` is absent.
pub const DEFAULT_COUNT: usize = 5;

/// Where a window comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowSource {
    /// The machine is in no configuration's scope: 01:00 local for 4 hours, daily.
    DefaultOffPeak,
    /// A maintenance configuration.
    MaintenanceConfiguration,
}

/// How the machine is in the configuration's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// Its id is listed.
    MachineId,
    /// It carries every label of the scope.
    Label,
    /// Its region is listed.
    Region,
}

/// One window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC (start + duration in elapsed time).
    pub end: DateTime<Utc>,
    /// Start on the zone's clock, with its offset.
    #[schema(value_type = String)]
    pub start_local: DateTime<FixedOffset>,
    /// End on the zone's clock, with its offset.
    #[schema(value_type = String)]
    pub end_local: DateTime<FixedOffset>,
    /// IANA zone.
    pub timezone: String,
    /// Where the window comes from.
    pub source: WindowSource,
    /// The configuration's id, for `maintenance_configuration`.
    pub maintenance_configuration_id: Option<Uuid>,
    /// How the machine matched that configuration's scope.
    pub matched_by: Option<MatchedBy>,
    /// DST remarks (a start moved out of a gap, a repeated hour, clocks changing inside).
    pub notes: Vec<String>,
}

/// `{items: [window…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Windows {
    /// The windows, earliest first.
    pub items: Vec<WindowView>,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(machine_windows))
        .routes(routes!(machine_calendar))
        .routes(routes!(configuration_calendar))
}

fn query(raw: Option<&str>) -> Result<(Option<DateTime<Utc>>, usize), ApiError> {
    let (mut from, mut count) = (None, DEFAULT_COUNT);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "from" => {
                from =
                    Some(DateTime::parse_from_rfc3339(&v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                        ApiError::bad_param("from", "must be an RFC 3339 instant, e.g. 2025-01-01T00:00:00Z")
                    })?)
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

/// The schedule that applies to a machine and where it comes from.
pub(crate) struct Applied {
    schedule: Schedule,
    source: WindowSource,
    configuration_id: Option<Uuid>,
    matched_by: Option<MatchedBy>,
}

/// The machine, or a 404 naming it.
async fn machine(state: &AppState, id: Uuid) -> Result<Machine, ApiError> {
    machines::get(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}"))
}

async fn applied(state: &AppState, machine: &Machine) -> Result<Applied, ApiError> {
    let labels = serde_json::to_value(&machine.spec.labels).map_err(|e| ApiError::Internal(e.to_string()))?;
    let found = maintenance::for_machine(&state.pool, machine.id, &labels, &machine.spec.region).await?;
    applied_from(&state.settings, &machine.spec.timezone, found.map(|(c, how)| (c.id, c.body, how)))
}

/// The schedule of a machine in zone `own_zone` under the configuration that applies to it
/// (its id, body and how it matched), or its default off-peak window when none does.
pub(crate) fn applied_from(
    settings: &crate::Settings,
    own_zone: &hotpatch_domain::Timezone,
    configuration: Option<(Uuid, serde_json::Value, ScopeMatch)>,
) -> Result<Applied, ApiError> {
    let own_zone = own_zone.0;
    let Some((id, body, how)) = configuration else {
        return Ok(Applied {
            schedule: Schedule::daily_off_peak(own_zone, settings.off_peak_start, settings.off_peak_duration),
            source: WindowSource::DefaultOffPeak,
            configuration_id: None,
            matched_by: None,
        });
    };
    let checked = stored_schedule(id, body)?;
    let schedule = match checked.timezone {
        Some(_) => checked.schedule,
        None => checked.schedule.with_timezone(own_zone),
    };
    let matched_by = match how {
        ScopeMatch::MachineId => MatchedBy::MachineId,
        ScopeMatch::Label => MatchedBy::Label,
        ScopeMatch::Region => MatchedBy::Region,
    };
    Ok(Applied {
        schedule,
        source: WindowSource::MaintenanceConfiguration,
        configuration_id: Some(id),
        matched_by: Some(matched_by),
    })
}

/// The windows of an applied schedule that have not ended at `from`, at most `count`.
pub(crate) fn windows_of(a: &Applied, from: DateTime<Utc>, count: usize) -> Vec<WindowView> {
    let view = |w: Window| WindowView {
        start: w.start,
        end: w.end,
        start_local: w.start_local,
        end_local: w.end_local,
        timezone: w.timezone.name().to_owned(),
        source: a.source,
        maintenance_configuration_id: a.configuration_id,
        matched_by: a.matched_by,
        notes: w.notes,
    };
    next_windows(&a.schedule, from, count.min(MAX_COUNT)).into_iter().map(view).collect()
}

fn stored_schedule(id: Uuid, body: serde_json::Value) -> Result<Checked, ApiError> {
    let spec: ConfigurationSpec = serde_json::from_value(body)
        .map_err(|e| ApiError::Internal(format!("stored maintenance configuration {id}: {e}")))?;
    check(&spec)
}

/// The machine's windows that have not ended at `from`, with their source (the same as
/// `GET /v1/machines/{id}/windows`; patch status shows the first as `next_window`).
pub async fn machine_windows_at(
    state: &AppState,
    machine: &Machine,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Vec<WindowView>, ApiError> {
    Ok(windows_of(&applied(state, machine).await?, from, count))
}

/// The machine's next maintenance windows.
#[utoipa::path(get, path = "/v1/machines/{id}/windows", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("from" = Option<String>, Query, description = "RFC 3339 instant, default now; a window in progress then comes first"),
        ("count" = Option<usize>, Query, description = "1–100, default 5")),
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
    let m = machine(&state, id).await?;
    let items = machine_windows_at(&state, &m, from.unwrap_or_else(|| state.clock.now()), count).await?;
    Ok(Json(Windows { items }))
}

/// The machine's next maintenance windows as an iCalendar (RFC 5545, times in UTC).
#[utoipa::path(get, path = "/v1/machines/{id}/calendar.ics", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("from" = Option<String>, Query, description = "RFC 3339 instant, default now"),
        ("count" = Option<usize>, Query, description = "1–100, default 5")),
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
    let (from, count) = query(raw.as_deref())?;
    let now = state.clock.now();
    let a = applied(&state, &machine(&state, id).await?).await?;
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
        ("from" = Option<String>, Query, description = "RFC 3339 instant, default now"),
        ("count" = Option<usize>, Query, description = "1–100, default 5")),
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
    let (from, count) = query(raw.as_deref())?;
    let now = state.clock.now();
    let c = maintenance::get(&state.pool, id)
        .await
        .or_not_found(|| format!("no maintenance configuration with id {id}"))?;
    let summary = format!("Maintenance window ({})", c.name);
    let checked = stored_schedule(c.id, c.body)?;
    let windows = next_windows(&checked.schedule, from.unwrap_or(now), count);
    Ok(calendar(&format!("configuration-{id}"), &summary, &windows, now))
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
