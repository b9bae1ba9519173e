//! Availability-first rollouts (DESIGN §1 "Orchestration", §3): preview a plan, start one, list
//! and read them with their progress, pause, resume and cancel; the HTTP side of
//! [`hotpatch_app::rollouts`].

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::rollouts::{
    self, PlanView, PreviewRequest, RolloutDetail, RolloutRequest, RolloutState, RolloutSummary,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_rollout))
        .routes(routes!(create_rollout, list_rollouts))
        .routes(routes!(get_rollout))
        .routes(routes!(pause_rollout))
        .routes(routes!(resume_rollout))
        .routes(routes!(cancel_rollout))
}

/// `?machines=true|false` (default true).
fn machines_param(raw: Option<&str>) -> Result<bool, ApiError> {
    let mut with = true;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("machines", "true") => with = true,
            ("machines", "false") => with = false,
            ("machines", _) => return Err(ApiError::bad_param("machines", "must be true or false")),
            (k, _) => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: machines)",
                ))
            }
        }
    }
    Ok(with)
}

/// The plan a rollout of the release to the selected machines would follow; nothing is written.
/// `?machines=false` leaves out the per-machine lists (counts stay).
#[utoipa::path(post, path = "/v1/rollouts/preview", tag = "rollouts", request_body = PreviewRequest,
    params(("machines" = Option<bool>, Query, description = "Include per-machine lists (default true)")),
    responses((status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "Bad query parameter", body = Problem),
        (status = 404, description = "No such release", body = Problem),
        (status = 409, description = "The release was superseded", body = Problem),
        (status = 422, description = "Invalid options or selector, or no machine selected", body = Problem)),
    security(("bearer" = [])))]
async fn preview_rollout(
    State(state): State<AppState>,
    _: Operator,
    RawQuery(raw): RawQuery,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<PlanView>, ApiError> {
    let with_machines = machines_param(raw.as_deref())?;
    Ok(Json(rollouts::preview(&state, req, with_machines).await?))
}

/// Starts a rollout of the release to the selected machines, planned from now: 201 with the
/// rollout (also in `Location`).
#[utoipa::path(post, path = "/v1/rollouts", tag = "rollouts", request_body = RolloutRequest,
    responses((status = 201, description = "Started", body = RolloutDetail),
        (status = 404, description = "No such release", body = Problem),
        (status = 409, description = "The release was superseded", body = Problem),
        (status = 422, description = "Invalid options or selector, or no machine to install on", body = Problem)),
    security(("bearer" = [])))]
async fn create_rollout(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> Result<Response, ApiError> {
    let detail = rollouts::start(&state, req, principal.token_id).await?;
    let location =
        HeaderValue::from_str(&format!("/v1/rollouts/{}", detail.rollout.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(detail)).into_response())
}

/// Rollouts, newest first; `?state=` filters.
#[utoipa::path(get, path = "/v1/rollouts", tag = "rollouts",
    params(("state" = Option<String>, Query, pattern = "^(running|paused|halted|canceled|succeeded)$", description = "`running`, `paused`, `halted`, `canceled` or `succeeded`"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000 (default 100)"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of rollouts", body = Page<RolloutSummary>),
        (status = 400, description = "Bad query parameter", body = Problem)),
    security(("bearer" = [])))]
async fn list_rollouts(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<RolloutSummary>>, ApiError> {
    let params = PageParams::from_query(raw.as_deref(), &["state"])?;
    let mut filter = None;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
        if k == "state" {
            filter = Some(v.parse::<RolloutState>().map_err(|_| {
                ApiError::bad_param("state", "must be running, paused, halted, canceled or succeeded")
            })?);
        }
    }
    let summaries = rollouts::list(&state, filter, params.after, params.limit + 1).await?;
    Ok(Json(page(summaries, params.limit, |r| r.id, |r| r)))
}

/// A rollout with its progress by wave and batch.
#[utoipa::path(get, path = "/v1/rollouts/{id}", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "The rollout", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem)),
    security(("bearer" = [])))]
async fn get_rollout(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    Ok(Json(rollouts::get(&state, id).await?))
}

/// Pauses a running rollout: no new install starts (queued jobs run).
#[utoipa::path(post, path = "/v1/rollouts/{id}/pause", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Paused", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Not in a state it can be paused from (the detail says which)", body = Problem)),
    security(("bearer" = [])))]
async fn pause_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    Ok(Json(rollouts::pause(&state, id).await?))
}

/// Resumes a paused or halted rollout.
#[utoipa::path(post, path = "/v1/rollouts/{id}/resume", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Running again", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Not in a state it can be resumed from (the detail says which)", body = Problem)),
    security(("bearer" = [])))]
async fn resume_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    Ok(Json(rollouts::resume(&state, id).await?))
}

/// Cancels an unfinished rollout: its queued jobs are canceled (running ones finish).
#[utoipa::path(post, path = "/v1/rollouts/{id}/cancel", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Canceled", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Already finished (the detail says how)", body = Problem)),
    security(("bearer" = [])))]
async fn cancel_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    Ok(Json(rollouts::cancel(&state, id).await?))
}
