//! `/v1/regions`: which regions offer Windows Server 2025 Azure Edition (data, not code).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_domain::validation::is_identifier;
use hotpatch_store::regions::{self, Region};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::Page;
use crate::routes::machines::reevaluate_region;
use crate::AppState;

/// A region's capabilities.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionView {
    /// Region name, e.g. `uksouth`.
    pub name: String,
    /// Whether Windows Server 2025 Azure Edition images are available there.
    pub windows_server_2025_azure_edition: bool,
    /// When it was first recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Region> for RegionView {
    fn from(r: Region) -> Self {
        RegionView {
            name: r.name,
            windows_server_2025_azure_edition: r.windows_server_2025_azure_edition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The capabilities to set on a region.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRegion {
    /// Whether Windows Server 2025 Azure Edition images are available there.
    pub windows_server_2025_azure_edition: bool,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_regions)).routes(routes!(get_region, put_region))
}

/// All known regions.
#[utoipa::path(get, path = "/v1/regions", tag = "regions",
    responses((status = 200, description = "Every region (one page)", body = Page<RegionView>)),
    security(("bearer" = [])))]
async fn list_regions(State(state): State<AppState>, _: Reader) -> Result<Json<Page<RegionView>>, ApiError> {
    let items = regions::list(&state.pool).await?.into_iter().map(RegionView::from).collect();
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
    params(("name" = String, Path, description = "Region name")),
    responses((status = 200, description = "The region", body = RegionView),
        (status = 404, description = "Unknown region", body = Problem)),
    security(("bearer" = [])))]
async fn get_region(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RegionView>, ApiError> {
    region_name(&name)?;
    let r = regions::get(&state.pool, &name).await.or_not_found(|| format!("no region named '{name}'"))?;
    Ok(Json(r.into()))
}

/// Create or update a region. Machines whose eligibility depends on it are re-evaluated
/// in the same transaction.
#[utoipa::path(put, path = "/v1/regions/{name}", tag = "regions", request_body = PutRegion,
    params(("name" = String, Path, description = "Region name")),
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
    let mut tx = state.pool.begin().await?;
    let (region, created) = regions::upsert(&mut *tx, &name, body.windows_server_2025_azure_edition).await?;
    let reevaluated = reevaluate_region(&mut tx, &name).await?;
    tx.commit().await?;
    tracing::info!(region = %name, ws2025 = body.windows_server_2025_azure_edition, reevaluated, "region updated");
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(region.into())))
}
