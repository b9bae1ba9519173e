//! `/v1/regions`: which regions offer Windows Server 2025 Azure Edition (data, not code), and
//! `/v1/region-pairs`: the geo-pairs rollouts never put in one wave; the use cases are
//! `hotpatch_app::fleet::regions`'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hotpatch_app::fleet::regions::{self, PutRegion, RegionPairView, RegionView};
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
    OpenApiRouter::new()
        .routes(routes!(list_regions))
        .routes(routes!(get_region, put_region))
        .routes(routes!(list_region_pairs))
        .routes(routes!(put_region_pair, delete_region_pair))
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
    region_param("name", name)
}

fn region_param(param: &str, name: &str) -> Result<(), ApiError> {
    if is_identifier(name, 64) {
        Ok(())
    } else {
        Err(ApiError::bad_param(param, "region names are 1–64 lower-case letters, digits or dashes"))
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

/// Every geo-pair of regions (each once, names in alphabetical order): rollouts never put the
/// two regions of a pair in the same wave.
#[utoipa::path(get, path = "/v1/region-pairs", tag = "regions",
    responses((status = 200, description = "Every pair (one page)", body = Page<RegionPairView>)),
    security(("bearer" = [])))]
async fn list_region_pairs(
    State(state): State<AppState>,
    _: Reader,
) -> Result<Json<Page<RegionPairView>>, ApiError> {
    Ok(Json(Page { items: regions::pairs(&state).await?, next_cursor: None }))
}

/// Pairs two regions (in either order): rollouts planned from now on keep them in different
/// waves. 201 when the pair is new, 200 when it was already recorded.
#[utoipa::path(put, path = "/v1/region-pairs/{a}/{b}", tag = "regions",
    params(("a" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "One region"),
        ("b" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The other region")),
    responses((status = 200, description = "Already paired", body = RegionPairView),
        (status = 201, description = "Paired", body = RegionPairView),
        (status = 400, description = "Malformed region name", body = Problem),
        (status = 422, description = "A region paired with itself", body = Problem)),
    security(("bearer" = [])))]
async fn put_region_pair(
    State(state): State<AppState>,
    _: Admin,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<RegionPairView>), ApiError> {
    region_param("a", &a)?;
    region_param("b", &b)?;
    let (pair, created) = regions::set_pair(&state, &a, &b).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(pair)))
}

/// Unpairs two regions (in either order). Rollouts already planned keep their waves.
#[utoipa::path(delete, path = "/v1/region-pairs/{a}/{b}", tag = "regions",
    params(("a" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "One region"),
        ("b" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "The other region")),
    responses((status = 204, description = "Unpaired"),
        (status = 400, description = "Malformed region name", body = Problem),
        (status = 404, description = "Not a pair", body = Problem)),
    security(("bearer" = [])))]
async fn delete_region_pair(
    State(state): State<AppState>,
    _: Admin,
    ApiPath((a, b)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    region_param("a", &a)?;
    region_param("b", &b)?;
    regions::remove_pair(&state, &a, &b).await?;
    Ok(StatusCode::NO_CONTENT)
}
