//! Region capabilities: which regions offer Windows Server 2025 Azure Edition (data, not
//! code). A change re-evaluates, in the same transaction, the machines whose eligibility
//! depends on the region.

use chrono::{DateTime, Utc};
use hotpatch_store::regions::{self, Region};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::derive::reevaluate_region;
use crate::error::{AppError, OrNotFound};
use crate::App;

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

/// Every known region, by name.
pub async fn list(app: &App) -> Result<Vec<RegionView>, AppError> {
    Ok(regions::list(&app.pool).await?.into_iter().map(RegionView::from).collect())
}

/// One region.
pub async fn get(app: &App, name: &str) -> Result<RegionView, AppError> {
    let r = regions::get(&app.pool, name).await.or_not_found(|| format!("no region named '{name}'"))?;
    Ok(r.into())
}

/// Creates or updates a region and re-evaluates the machines whose eligibility depends on it,
/// in one transaction; answers the region and whether it was created.
pub async fn put(app: &App, name: &str, body: &PutRegion) -> Result<(RegionView, bool), AppError> {
    let mut tx = app.pool.begin().await?;
    let (region, created) = regions::upsert(&mut *tx, name, body.windows_server_2025_azure_edition).await?;
    let reevaluated = reevaluate_region(&mut tx, name).await?;
    tx.commit().await?;
    tracing::info!(region = %name, ws2025 = body.windows_server_2025_azure_edition, reevaluated, "region updated");
    Ok((region.into(), created))
}
