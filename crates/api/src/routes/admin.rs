//! `/v1/admin/clock`: the service clock, and — only when `hotpatchd` runs with
//! `HOTPATCH_CLOCK_CONTROL=true` — moving it, so end-to-end tests and demos can bring a fleet's
//! maintenance windows in seconds instead of days. Production leaves it off: then the clock is
//! the system clock and `PUT` answers 404.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::AppState;

/// The service clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    /// What the service takes as now.
    pub now: DateTime<Utc>,
    /// Whether it can be moved (`HOTPATCH_CLOCK_CONTROL`).
    pub controllable: bool,
}

/// Where to move the clock; it keeps running from there.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// The new now (RFC 3339).
    pub now: DateTime<Utc>,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_clock, set_clock))
}

fn view(state: &AppState) -> ClockView {
    ClockView { now: state.clock.now(), controllable: state.settings.clock_control }
}

/// The instant the service takes as now (rules, windows, leases, rollouts).
#[utoipa::path(get, path = "/v1/admin/clock", tag = "admin",
    responses((status = 200, description = "The clock", body = ClockView)),
    security(("bearer" = [])))]
async fn get_clock(State(state): State<AppState>, _: Reader) -> Json<ClockView> {
    Json(view(&state))
}

/// Moves the service clock to `now` (it keeps running from there). Only for test and demo
/// installations started with `HOTPATCH_CLOCK_CONTROL=true`; 404 otherwise. Leases, windows and
/// rollouts all follow it, so move it only while no job is running.
#[utoipa::path(put, path = "/v1/admin/clock", tag = "admin", request_body = SetClock,
    responses((status = 200, description = "Moved", body = ClockView),
        (status = 404, description = "Clock control is off", body = Problem),
        (status = 422, description = "Invalid body", body = Problem)),
    security(("bearer" = [])))]
async fn set_clock(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(body): ApiJson<SetClock>,
) -> Result<Json<ClockView>, ApiError> {
    if !state.settings.clock_control {
        return Err(ApiError::NotFound(
            "clock control is off (start hotpatchd with HOTPATCH_CLOCK_CONTROL=true to enable it)".to_owned(),
        ));
    }
    let before = state.clock.now();
    state.clock.set(body.now);
    tracing::warn!(%before, now = %body.now, "service clock moved");
    Ok(Json(view(&state)))
}
