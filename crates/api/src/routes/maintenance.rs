//! `/v1/maintenance-configurations`: schedules (in a zone of their own or each machine's) and
//! the scope of machines they apply to, matched at planning time.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::schedules::{self, ConfigurationView};
use hotpatch_domain::schedule::ConfigurationSpec;
use serde_json::{Map, Value};
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
    OpenApiRouter::new().routes(routes!(create_configuration, list_configurations)).routes(routes!(
        get_configuration,
        patch_configuration,
        delete_configuration
    ))
}

/// Create a maintenance configuration; the answer lists the windows a DST change affects
/// in the next 12 months.
#[utoipa::path(post, path = "/v1/maintenance-configurations", tag = "maintenance", request_body = ConfigurationSpec,
    responses((status = 201, description = "Created", body = ConfigurationView),
        (status = 409, description = "Name taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn create_configuration(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(spec): ApiJson<ConfigurationSpec>,
) -> Result<Response, ApiError> {
    let view = schedules::create(&state, spec).await?;
    let location = format!("/v1/maintenance-configurations/{}", view.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// List maintenance configurations, a page at a time.
#[utoipa::path(get, path = "/v1/maintenance-configurations", tag = "maintenance",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of configurations", body = Page<ConfigurationView>),
        (status = 400, description = "Bad paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_configurations(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<ConfigurationView>>, ApiError> {
    let params = PageParams::from_query(raw.as_deref(), &[])?;
    let views = schedules::list(&state, params.after, params.limit + 1).await?;
    Ok(Json(page(views, params.limit, |v| v.id, |v| v)))
}

/// One maintenance configuration.
#[utoipa::path(get, path = "/v1/maintenance-configurations/{id}", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Configuration id")),
    responses((status = 200, description = "The configuration", body = ConfigurationView),
        (status = 404, description = "No such configuration", body = Problem)),
    security(("bearer" = [])))]
async fn get_configuration(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ConfigurationView>, ApiError> {
    let c: ConfigurationView = schedules::get(&state, id).await?;
    Ok(Json(c))
}

/// Change some fields (JSON merge patch: the fields given replace the stored ones, `null`
/// resets one to its default); the whole configuration is validated again.
#[utoipa::path(patch, path = "/v1/maintenance-configurations/{id}", tag = "maintenance",
    request_body(content = Object, description = "Fields to replace"),
    params(("id" = Uuid, Path, description = "Configuration id")),
    responses((status = 200, description = "Updated", body = ConfigurationView),
        (status = 404, description = "No such configuration", body = Problem),
        (status = 409, description = "Name taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn patch_configuration(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<Map<String, Value>>,
) -> Result<Json<ConfigurationView>, ApiError> {
    Ok(Json(schedules::patch(&state, id, patch).await?))
}

/// Delete a configuration; its machines fall back to their default off-peak window.
#[utoipa::path(delete, path = "/v1/maintenance-configurations/{id}", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Configuration id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such configuration", body = Problem)),
    security(("bearer" = [])))]
async fn delete_configuration(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    schedules::delete(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
