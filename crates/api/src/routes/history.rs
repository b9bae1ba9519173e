//! What a machine has installed (its last assessment) and what was done to it (its jobs):
//! `GET /v1/machines/{id}/installed-updates` and `GET /v1/machines/{id}/update-history` (the use
//! cases are `hotpatch_app::fleet::history`'s).
//!
//! The history lists every install, rollback and reboot of the period (whoever asked: "install
//! now", a rollback, a rollout) with its outcome; assessments fill the rest of the page.

use axum::extract::{RawQuery, State};
use axum::Json;
use hotpatch_app::fleet::history::{self, InstalledUpdates, UpdateHistory};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(installed_updates)).routes(routes!(update_history))
}

/// The updates installed on a machine: KB, title, classification, install date and installer,
/// from its last assessment (with the OS build it reported).
#[utoipa::path(get, path = "/v1/machines/{id}/installed-updates", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "Installed updates", body = InstalledUpdates),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn installed_updates(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<InstalledUpdates>, ApiError> {
    Ok(Json(history::installed_updates(&state, id).await?))
}

/// Reads `?days=` (1–3650, default 30); any other parameter is refused.
fn days_param(raw: Option<&str>) -> Result<i64, ApiError> {
    let mut days = 30;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "days" => {
                days = v.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| {
                    ApiError::bad_param("days", "must be a whole number of days, 1 to 3650")
                })?;
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: days)",
                ))
            }
        }
    }
    Ok(days)
}

/// Every install, rollback and reboot of the last `days` (default 30), with its outcome, the
/// KBs it installed or removed, whether it rebooted, when it ran and the operation or rollout
/// it belonged to; and the assessments of the period. Newest first.
#[utoipa::path(get, path = "/v1/machines/{id}/update-history", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "How far back, 1–3650 days (default 30)")),
    responses((status = 200, description = "The history", body = UpdateHistory),
        (status = 400, description = "Bad `days`", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn update_history(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<UpdateHistory>, ApiError> {
    let days = days_param(raw.as_deref())?;
    Ok(Json(history::update_history(&state, id, days).await?))
}
