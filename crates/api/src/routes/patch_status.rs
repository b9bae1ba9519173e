//! `GET /v1/machines/{id}/patch-status`: the portal view of one machine (hotpatch, baseline,
//! cycle, reboot, next window, and what its agent reported: assessment, compliance, liveness,
//! health), and the temporary operator endpoint
//! `PUT /v1/machines/{id}/installed-state` that records what a machine runs until agents report it.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_app::status::{self, Got, InstalledState, InstalledStateView, PatchStatusView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::etag::{json_with_etag, not_modified, parse_at, IfNoneMatch};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_patch_status)).routes(routes!(put_installed_state))
}

fn at_param(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let mut at = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "at" => at = Some(parse_at(&v)?),
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: at)",
                ))
            }
        }
    }
    Ok(at)
}

/// The portal view of one machine: hotpatch status, current baseline, latest installed release,
/// cycle position with the next release and whether it needs a reboot, reboot pending, its last
/// assessment (recommended updates, update compliance), next window, agent, health and rollout.
/// `?at=` (RFC 3339, default now) shows the status at another instant.
///
/// Answers carry a strong `ETag` that changes exactly when the answer does (also when only the
/// clock changes it: a new month, a release coming out, the next window ending, the agent turning
/// disconnected). `If-None-Match` with it (or `*`; weak forms compare weakly) answers 304 from a
/// version check of the stored inputs, without computing the answer. Each replica keeps the
/// answers it computed (also those of a list with `include=patch_status`) and serves them without
/// reading the database until a write of their inputs, on any replica, drops them.
#[utoipa::path(get, path = "/v1/machines/{id}/patch-status", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("at" = Option<DateTime<Utc>>, Query, description = "Instant to evaluate at (default now)"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of an earlier answer; `*` matches any")),
    responses((status = 200, description = "The patch status", body = PatchStatusView,
            headers(("ETag" = String, description = "Strong entity tag of the answer"))),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match",
            headers(("ETag" = String, description = "The matching entity tag"))),
        (status = 400, description = "Bad `at`", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn get_patch_status(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let at = at_param(raw.as_deref())?;
    match status::get(&state, id, at, &IfNoneMatch::of(&headers)).await? {
        Got::NotModified(etag) => not_modified(&etag),
        Got::Answer(answer) => json_with_etag(&answer.etag, answer.body.clone()),
    }
}

/// Temporary, until agents report inventory: record what a machine runs (its current baseline,
/// the latest release it installed, whether a reboot is pending). The releases must be of the
/// machine's OS, and the current baseline a baseline.
#[utoipa::path(put, path = "/v1/machines/{id}/installed-state", tag = "machines", request_body = InstalledState,
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "Recorded", body = InstalledStateView),
        (status = 404, description = "No such machine", body = Problem),
        (status = 422, description = "Unknown release, another OS's, or not a baseline", body = Problem)),
    security(("bearer" = [])))]
async fn put_installed_state(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<InstalledState>,
) -> Result<Json<InstalledStateView>, ApiError> {
    Ok(Json(status::set_installed_state(&state, id, &body).await?))
}
