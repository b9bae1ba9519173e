//! `/v1/admin/clock`: the service clock, and — only when `hotpatchd` runs with
//! `HOTPATCH_CLOCK_CONTROL=true` — moving it (the rule is [`hotpatch_app::admin`]). Production
//! leaves it off: then the clock is the system clock and `PUT` answers 404.

use axum::extract::State;
use axum::Json;
use hotpatch_app::admin::{self, ClockView, SetClock};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_clock, set_clock))
}

/// The instant the service takes as now (rules, windows, leases, rollouts).
#[utoipa::path(get, path = "/v1/admin/clock", tag = "admin",
    responses((status = 200, description = "The clock", body = ClockView)),
    security(("bearer" = [])))]
async fn get_clock(State(state): State<AppState>, _: Reader) -> Json<ClockView> {
    Json(admin::clock(&state))
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
    Ok(Json(admin::set_clock(&state, body).await?))
}
