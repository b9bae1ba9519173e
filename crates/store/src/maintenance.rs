//! Maintenance configurations: stored as the API shows them (one jsonb body, loaded back only
//! through the same checks as at write: `MaintenanceConfiguration`'s `Deserialize`), with their
//! scope in columns so that the configuration of a machine is found at planning time by the one
//! statement of the precedence rule (the SQL function `applicable_configuration`).

use chrono::{DateTime, Utc};
use hotpatch_domain::schedule::MaintenanceConfiguration;
pub use hotpatch_domain::schedule::ScopeMatch;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

/// A stored configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Its id (uuid v7).
    pub id: Uuid,
    /// The configuration, as validated when it was written.
    pub configuration: MaintenanceConfiguration,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The row as read.
struct Row {
    id: Uuid,
    body: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Configuration {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Configuration, StoreError> {
        Ok(Configuration {
            id: r.id,
            configuration: load(r.id, r.body)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A stored body as the typed configuration; one that no longer passes the checks is stored
/// data gone bad (`Decode`: an internal error, never "no configuration").
pub fn load(id: Uuid, body: Value) -> Result<MaintenanceConfiguration, StoreError> {
    serde_json::from_value(body)
        .map_err(|e| StoreError::Decode(format!("maintenance configuration {id}: {e}")))
}

/// The body and scope columns of a configuration.
fn columns(c: &MaintenanceConfiguration) -> Result<(Value, Value), StoreError> {
    let body = serde_json::to_value(c).map_err(|e| StoreError::Decode(e.to_string()))?;
    let labels = serde_json::to_value(&c.scope().labels).map_err(|e| StoreError::Decode(e.to_string()))?;
    Ok((body, labels))
}

/// Creates a configuration; a taken name is a `Conflict` on `maintenance_configuration_name_key`.
pub async fn insert(
    db: impl PgExecutor<'_>,
    id: Uuid,
    c: &MaintenanceConfiguration,
) -> Result<Configuration, StoreError> {
    let (body, labels) = columns(c)?;
    let scope = c.scope();
    sqlx::query_as!(
        Row,
        r#"insert into maintenance_configuration (id, name, body, scope_machine_ids, scope_labels, scope_regions)
           values ($1, $2, $3, $4, $5, $6)
           returning id, body, created_at, updated_at"#,
        id,
        c.name(),
        body,
        &scope.machine_ids,
        labels,
        &scope.regions
    )
    .fetch_one(db)
    .await
    .map_err(unique_violation)?
    .try_into()
}

/// Replaces a configuration.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    c: &MaintenanceConfiguration,
) -> Result<Configuration, StoreError> {
    let (body, labels) = columns(c)?;
    let scope = c.scope();
    sqlx::query_as!(
        Row,
        r#"update maintenance_configuration
           set name = $2, body = $3, scope_machine_ids = $4, scope_labels = $5, scope_regions = $6,
               updated_at = now()
           where id = $1
           returning id, body, created_at, updated_at"#,
        id,
        c.name(),
        body,
        &scope.machine_ids,
        labels,
        &scope.regions
    )
    .fetch_optional(db)
    .await
    .map_err(unique_violation)?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// One configuration.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Configuration, StoreError> {
    sqlx::query_as!(
        Row,
        "select id, body, created_at, updated_at from maintenance_configuration where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// Configurations in id order, after `after`, at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Configuration>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        r#"select id, body, created_at, updated_at from maintenance_configuration
           where $1::uuid is null or id > $1 order by id limit $2"#,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Configuration::try_from).collect()
}

/// Deletes a configuration; its machines fall back to their default window.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!("delete from maintenance_configuration where id = $1", id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The configuration that governs a machine, and how it matched (the rule is the SQL function
/// `applicable_configuration`). `None`: the machine keeps its default off-peak window.
pub async fn for_machine(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    labels: &Value,
    region: &str,
) -> Result<Option<(Configuration, ScopeMatch)>, StoreError> {
    let row = sqlx::query!(
        r#"select c.id, c.body, c.created_at, c.updated_at, a.rank as "rank!"
           from applicable_configuration($1, $2, $3) a
           join maintenance_configuration c on c.id = a.configuration_id"#,
        machine_id,
        labels,
        region
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        let how = scope_match(r.rank)?;
        let row = Row { id: r.id, body: r.body, created_at: r.created_at, updated_at: r.updated_at };
        Ok((Configuration::try_from(row)?, how))
    })
    .transpose()
}

/// How a machine matched, from `applicable_configuration`'s rank.
pub fn scope_match(rank: i32) -> Result<ScopeMatch, StoreError> {
    match rank {
        1 => Ok(ScopeMatch::MachineId),
        2 => Ok(ScopeMatch::Label),
        3 => Ok(ScopeMatch::Region),
        other => Err(StoreError::Decode(format!("unexpected configuration rank {other}"))),
    }
}

/// The distinct time zones of the machines a scope matches now (at most `limit`, by name),
/// for warnings about a configuration read on each machine's own clock.
pub async fn scope_timezones(
    db: impl PgExecutor<'_>,
    machine_ids: &[Uuid],
    labels: &Value,
    regions: &[String],
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let zones = sqlx::query_scalar!(
        r#"select distinct timezone as "timezone!" from machine
           where id = any($1)
              or ($2::jsonb <> '{}'::jsonb and labels @> $2::jsonb)
              or region = any($3)
           order by 1
           limit $4"#,
        machine_ids,
        labels,
        regions,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(zones)
}
