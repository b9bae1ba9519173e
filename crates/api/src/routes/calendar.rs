//! `GET /v1/calendar?os=&year=`: the twelve months of a year, each published (the catalog's
//! active release) or projected (the calendar rule's plan; projections are always planned); the
//! HTTP side of [`hotpatch_app::catalog::calendar`].

use axum::extract::{RawQuery, State};
use axum::Json;
use hotpatch_app::catalog::{self, CalendarView};
use hotpatch_domain::OsVersion;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::AppState;

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
        ("year" = i32, Query, minimum = 2000, maximum = 9999, description = "Year, 2000–9999")),
    responses((status = 200, description = "The year's months", body = CalendarView),
        (status = 400, description = "Missing or bad os or year", body = Problem)),
    security(("bearer" = [])))]
async fn get_calendar(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<CalendarView>, ApiError> {
    let (os, year) = query(raw.as_deref())?;
    Ok(Json(catalog::calendar(&state, os, year).await?))
}
