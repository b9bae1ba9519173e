//! Region capabilities: which regions offer Windows Server 2025 Azure Edition (data, not
//! code). A change re-evaluates, in the same transaction, the machines whose eligibility
//! depends on the region. Also the geo-pairs of regions that rollouts keep apart.

use chrono::{DateTime, Utc};
use hotpatch_store::regions::{self, Region};
use hotpatch_store::rollouts;
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

/// Two geo-paired regions (Azure's region pairs): a rollout never puts them in the same wave.
/// Stored once, names in alphabetical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RegionPairView {
    /// The first name in alphabetical order.
    pub region_a: String,
    /// The other.
    pub region_b: String,
}

impl RegionPairView {
    fn of(a: &str, b: &str) -> Self {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        RegionPairView { region_a: a.to_owned(), region_b: b.to_owned() }
    }
}

/// Every geo-pair, sorted.
pub async fn pairs(app: &App) -> Result<Vec<RegionPairView>, AppError> {
    let pairs = rollouts::region_pairs(&app.pool).await?;
    Ok(pairs.into_iter().map(|(a, b)| RegionPairView { region_a: a, region_b: b }).collect())
}

/// A region paired with itself is refused (it would keep a region out of its own wave).
fn two_regions(a: &str, b: &str) -> Result<(), AppError> {
    if a == b {
        return Err(AppError::field("b", format!("a region cannot be paired with itself ('{a}')")));
    }
    Ok(())
}

/// Records that `a` and `b` (valid region names, lower case) are geo-paired; answers the pair
/// and whether it is new. Rollouts planned from now on keep them apart.
pub async fn set_pair(app: &App, a: &str, b: &str) -> Result<(RegionPairView, bool), AppError> {
    two_regions(a, b)?;
    let created = rollouts::set_region_pair(&app.pool, a, b, app.clock.now()).await?;
    tracing::info!(region_a = %a, region_b = %b, created, "region pair set");
    Ok((RegionPairView::of(a, b), created))
}

/// Forgets that `a` and `b` are geo-paired; `NotFound` when they were not. Rollouts already
/// planned keep their waves.
pub async fn remove_pair(app: &App, a: &str, b: &str) -> Result<(), AppError> {
    if !rollouts::remove_region_pair(&app.pool, a, b).await? {
        return Err(AppError::NotFound(format!("'{a}' and '{b}' are not a region pair")));
    }
    tracing::info!(region_a = %a, region_b = %b, "region pair removed");
    Ok(())
}
