//! `POST /v1/machines/import`: up to 10,000 machines in one request, all or nothing (the use
//! case is `hotpatch_app::fleet::import`).
//!
//! Every item is checked before anything is written, so one answer lists every bad
//! item by index; then the whole batch goes in with one statement.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::fleet::import::{self, ImportResult};
use hotpatch_domain::MachineSpec;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Operator;
use crate::error::{ApiError, Problem};
use crate::extract::{json_body, parse_json};
use crate::AppState;

/// The route of this module, with the larger body limit imports need.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_machines))
        .layer(axum::extract::DefaultBodyLimit::max(crate::IMPORT_BODY_LIMIT))
}

/// Register up to 10,000 machines at once: all or nothing; errors carry the item index.
#[utoipa::path(post, path = "/v1/machines/import", tag = "machines", request_body = Vec<MachineSpec>,
    responses(
        (status = 201, description = "All registered", body = ImportResult),
        (status = 409, description = "Only name conflicts (errors list them by index)", body = Problem),
        (status = 413, description = "Body over 16 MiB", body = Problem),
        (status = 422, description = "Invalid items (errors carry index, field, message)", body = Problem)),
    security(("bearer" = [])))]
async fn import_machines(
    State(state): State<AppState>,
    _: Operator,
    request: Request,
) -> Result<Response, ApiError> {
    // Items are parsed one by one by the service, so that every bad item is named by index.
    let body = json_body(request, &()).await?;
    let items: Vec<serde_json::Value> = parse_json(&body)?;
    let result = import::import(&state, items).await?;
    Ok((StatusCode::CREATED, Json(result)).into_response())
}
