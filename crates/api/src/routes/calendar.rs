//! `GET /v1/calendar?os=&year=`: the twelve months of a year, each published (the catalog's
//! active release) or projected (the calendar rule's plan; projections are always planned).

use axum::extract::{RawQuery, State};
use axum::Json;
use hotpatch_domain::{Month, OsVersion, ReleaseKind};
use hotpatch_scheduler::cycle::{calendar, MonthStatus};
use hotpatch_store::releases;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::routes::releases::ReleaseRef;
use crate::AppState;

/// Published or projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonthStatusView {
    /// The catalog has the month's release.
    Published,
    /// Nothing published yet: the calendar rule's plan.
    Projected,
}

/// One month of the calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarMonthView {
    /// `YYYY-MM`.
    #[schema(value_type = String, example = "2025-01")]
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// `false` only for a published unplanned baseline.
    pub planned: bool,
    /// Published or projected.
    pub status: MonthStatusView,
    /// The month's active release, when published.
    pub release: Option<ReleaseRef>,
    /// Whether installing the month's release requires a reboot (baselines).
    pub reboot_required: bool,
}

/// A year of the cycle for one OS.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    /// The OS.
    pub os: OsVersion,
    /// The year.
    pub year: i32,
    /// Its twelve months, January first.
    pub months: Vec<CalendarMonthView>,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_calendar))
}

fn query(raw: Option<&str>) -> Result<(OsVersion, i32), ApiError> {
    let (mut os, mut year) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "os" => {
                os = Some(v.parse::<OsVersion>().map_err(|_| {
                    ApiError::bad_param(
                        "os",
                        format!(
                            "'{}' is not one of windows_server_2022, windows_server_2025",
                            v.escape_debug()
                        ),
                    )
                })?)
            }
            "year" => {
                year = Some(v.parse::<i32>().ok().filter(|y| (2000..=9999).contains(y)).ok_or_else(|| {
                    ApiError::bad_param(
                        "year",
                        format!("must be a year from 2000 to 9999, got '{}'", v.escape_debug()),
                    )
                })?)
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: os, year)",
                ))
            }
        }
    }
    let os = os.ok_or_else(|| ApiError::bad_param("os", "is required"))?;
    let year = year.ok_or_else(|| ApiError::bad_param("year", "is required"))?;
    Ok((os, year))
}

/// The twelve months of `year` for `os`: kind, planned or unplanned, published or projected,
/// the release when published, and whether it needs a reboot. Projected months never show
/// unplanned baselines (they cannot be predicted).
#[utoipa::path(get, path = "/v1/calendar", tag = "releases",
    params(
        ("os" = OsVersion, Query, description = "OS release"),
        ("year" = i32, Query, description = "Year, 2000–9999")),
    responses((status = 200, description = "The year's months", body = CalendarView),
        (status = 400, description = "Missing or bad os or year", body = Problem)),
    security(("bearer" = [])))]
async fn get_calendar(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<CalendarView>, ApiError> {
    let (os, year) = query(raw.as_deref())?;
    let catalog = releases::catalog_of(&state.pool, os).await?;
    let months = calendar(os, year, &state.settings.calendar, &catalog)
        .into_iter()
        .map(|m| CalendarMonthView {
            month: m.month,
            kind: m.kind,
            planned: m.planned,
            status: match m.status {
                MonthStatus::Published => MonthStatusView::Published,
                MonthStatus::Projected => MonthStatusView::Projected,
            },
            release: m.release.map(ReleaseRef::from),
            reboot_required: m.reboot_required,
        })
        .collect();
    Ok(Json(CalendarView { os, year, months }))
}
