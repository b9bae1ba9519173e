//! Region capabilities (which regions offer Windows Server 2025 Azure Edition).

use chrono::{DateTime, Utc};
use hotpatch_domain::RegionCapabilities;
use sqlx::PgExecutor;

use crate::error::StoreError;

/// A region and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Region name, e.g. `uksouth`.
    pub name: String,
    /// Whether Windows Server 2025 Azure Edition images are available there.
    pub windows_server_2025_azure_edition: bool,
    /// When it was first recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// All regions by name.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Region>, StoreError> {
    let rows = sqlx::query_as!(
        Region,
        "select name, windows_server_2025_azure_edition, created_at, updated_at from region order by name"
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// One region.
pub async fn get(db: impl PgExecutor<'_>, name: &str) -> Result<Region, StoreError> {
    sqlx::query_as!(
        Region,
        "select name, windows_server_2025_azure_edition, created_at, updated_at from region where name = $1",
        name
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Creates or replaces a region; returns it and whether it was created.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    name: &str,
    windows_server_2025_azure_edition: bool,
) -> Result<(Region, bool), StoreError> {
    let r = sqlx::query!(
        r#"insert into region (name, windows_server_2025_azure_edition) values ($1, $2)
           on conflict (name) do update
             set windows_server_2025_azure_edition = excluded.windows_server_2025_azure_edition,
                 updated_at = now()
           returning name, windows_server_2025_azure_edition, created_at, updated_at,
                     (xmax = 0) as "created!""#,
        name,
        windows_server_2025_azure_edition
    )
    .fetch_one(db)
    .await?;
    Ok((
        Region {
            name: r.name,
            windows_server_2025_azure_edition: r.windows_server_2025_azure_edition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        r.created,
    ))
}

/// What the eligibility rules need to know about regions.
pub async fn capabilities(db: impl PgExecutor<'_>) -> Result<RegionCapabilities, StoreError> {
    let names = sqlx::query_scalar!("select name from region where windows_server_2025_azure_edition")
        .fetch_all(db)
        .await?;
    Ok(RegionCapabilities::new(names))
}
