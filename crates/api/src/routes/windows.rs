//! `GET /v1/machines/{id}/windows`: a machine's next maintenance windows, from the
//! configuration that applies to it (machine id > label > region, then the oldest) or its
//! default off-peak window, in its own zone unless the configuration has one.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, FixedOffset, Utc};
use hotpatch_scheduler::windows::{next_windows, Schedule, Window};
use hotpatch_store::machines;
use hotpatch_store::maintenance::{self, ScopeMatch};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::ApiPath;
use crate::routes::maintenance::{check, ConfigurationSpec};
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
    OpenApiRouter::new().routes(routes!(machine_windows))
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
    let from = from.unwrap_or_else(Utc::now);
    let machine = machines::get(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let labels = serde_json::to_value(&machine.spec.labels).map_err(|e| ApiError::Internal(e.to_string()))?;
    let own_zone = machine.spec.timezone.0;
    let found = maintenance::for_machine(&state.pool, id, &labels, &machine.spec.region).await?;
    let (schedule, source, config_id, matched_by) = match found {
        None => (Schedule::default_off_peak(own_zone), WindowSource::DefaultOffPeak, None, None),
        Some((c, how)) => {
            let spec: ConfigurationSpec = serde_json::from_value(c.body)
                .map_err(|e| ApiError::Internal(format!("stored maintenance configuration {}: {e}", c.id)))?;
            let checked = check(&spec)?;
            let schedule = match checked.timezone {
                Some(_) => checked.schedule,
                None => checked.schedule.with_timezone(own_zone),
            };
            let how = match how {
                ScopeMatch::MachineId => MatchedBy::MachineId,
                ScopeMatch::Label => MatchedBy::Label,
                ScopeMatch::Region => MatchedBy::Region,
            };
            (schedule, WindowSource::MaintenanceConfiguration, Some(c.id), Some(how))
        }
    };
    let view = |w: Window| WindowView {
        start: w.start,
        end: w.end,
        start_local: w.start_local,
        end_local: w.end_local,
        timezone: w.timezone.name().to_owned(),
        source,
        maintenance_configuration_id: config_id,
        matched_by,
        notes: w.notes,
    };
    Ok(Json(Windows { items: next_windows(&schedule, from, count).into_iter().map(view).collect() }))
}
