//! Liveness and readiness for orchestrators and load balancers (no auth).

use axum::extract::State;
use axum::Json;
use hotpatch_app::error::AppError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::AppState;

/// A health answer. Named `Liveness` in the document: the agent's health report is `Health`, and
/// two schemas of one name would make one operation describe the other's body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Liveness)]
pub struct Health {
    /// Always `ok` when answered with 200.
    pub status: &'static str,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer, or the replica is shutting down", body = Problem)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    // A stopping replica leaves the load balancer's rotation before it closes its listener.
    if state.is_stopping() {
        return Err(AppError::Unavailable("this replica is shutting down".to_owned()).into());
    }
    hotpatch_store::ping(&state.pool)
        .await
        .map_err(|e| ApiError::from(AppError::Unavailable(format!("the database does not answer: {e}"))))?;
    Ok(Json(Health { status: "ok" }))
}
