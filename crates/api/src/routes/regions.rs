//! `/v1/regions`: which regions offer Windows Server 2025 Azure Edition (data, not code); the
//! use cases are `hotpatch_app::fleet::regions`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hotpatch_app::fleet::regions::{self, PutRegion, RegionView};
use hotpatch_domain::validation::is_identifier;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::Page;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_regions)).routes(routes!(get_region, put_region))
}

/// All known regions.
#[utoipa::path(get, path = "/v1/regions", tag = "regions",
    responses((status = 200, description = "Every region (one page)", body = Page<RegionView>)),
    security(("bearer" = [])))]
async fn list_regions(State(state): State<AppState>, _: Reader) -> Result<Json<Page<RegionView>>, ApiError> {
    let items = regions::list(&state).await?;
    Ok(Json(Page { items, next_cursor: None }))
}

fn region_name(name: &str) -> Result<(), ApiError> {
    if is_identifier(name, 64) {
        Ok(())
    } else {
        Err(ApiError::bad_param("name", "region names are 1–64 lower-case letters, digits or dashes"))
    }
}

/// One region.
#[utoipa::path(get, path = "/v1/regions/{name}", tag = "regions",
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "Region name")),
    responses((status = 200, description = "The region", body = RegionView),
        (status = 404, description = "Unknown region", body = Problem)),
    security(("bearer" = [])))]
async fn get_region(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RegionView>, ApiError> {
    region_name(&name)?;
    Ok(Json(regions::get(&state, &name).await?))
}

/// Create or update a region. Machines whose eligibility depends on it are re-evaluated
/// in the same transaction.
#[utoipa::path(put, path = "/v1/regions/{name}", tag = "regions", request_body = PutRegion,
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "Region name")),
    responses((status = 200, description = "Updated", body = RegionView),
        (status = 201, description = "Created", body = RegionView),
        (status = 422, description = "Invalid body", body = Problem)),
    security(("bearer" = [])))]
async fn put_region(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutRegion>,
) -> Result<(StatusCode, Json<RegionView>), ApiError> {
    region_name(&name)?;
    let (region, created) = regions::put(&state, &name, &body).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(region)))
}
