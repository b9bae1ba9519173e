//! Maintenance configurations: stored as the API shows them (one jsonb body), with their
//! scope in columns so that the configuration of a machine is found at planning time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

/// A stored configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Its id (uuid v7).
    pub id: Uuid,
    /// Its unique name.
    pub name: String,
    /// The validated configuration as the API shows it, without id and timestamps.
    pub body: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What to write: the body and its scope.
#[derive(Debug, Clone, Copy)]
pub struct ConfigurationWrite<'a> {
    /// Unique name.
    pub name: &'a str,
    /// The whole configuration as the API shows it.
    pub body: &'a Value,
    /// Machines named explicitly.
    pub scope_machine_ids: &'a [Uuid],
    /// Labels (a JSON object of strings) that a machine must all carry.
    pub scope_labels: &'a Value,
    /// Regions.
    pub scope_regions: &'a [String],
}

/// How a machine is in a configuration's scope, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScopeMatch {
    /// The machine's id is listed.
    MachineId,
    /// The machine carries every label of the scope.
    Label,
    /// The machine is in one of the regions.
    Region,
}

/// Creates a configuration; a taken name is a `Conflict` on `maintenance_configuration_name_key`.
pub async fn insert(
    db: impl PgExecutor<'_>,
    id: Uuid,
    w: ConfigurationWrite<'_>,
) -> Result<Configuration, StoreError> {
    sqlx::query_as!(
        Configuration,
        r#"insert into maintenance_configuration (id, name, body, scope_machine_ids, scope_labels, scope_regions)
           values ($1, $2, $3, $4, $5, $6)
           returning id, name, body, created_at, updated_at"#,
        id,
        w.name,
        w.body,
        w.scope_machine_ids,
        w.scope_labels,
        w.scope_regions
    )
    .fetch_one(db)
    .await
    .map_err(unique_violation)
}

/// Replaces a configuration.
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    w: ConfigurationWrite<'_>,
) -> Result<Configuration, StoreError> {
    sqlx::query_as!(
        Configuration,
        r#"update maintenance_configuration
           set name = $2, body = $3, scope_machine_ids = $4, scope_labels = $5, scope_regions = $6,
               updated_at = now()
           where id = $1
           returning id, name, body, created_at, updated_at"#,
        id,
        w.name,
        w.body,
        w.scope_machine_ids,
        w.scope_labels,
        w.scope_regions
    )
    .fetch_optional(db)
    .await
    .map_err(unique_violation)?
    .ok_or(StoreError::NotFound)
}

/// One configuration.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Configuration, StoreError> {
    sqlx::query_as!(
        Configuration,
        "select id, name, body, created_at, updated_at from maintenance_configuration where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Configurations in id order, after `after`, at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Configuration>, StoreError> {
    let rows = sqlx::query_as!(
        Configuration,
        r#"select id, name, body, created_at, updated_at from maintenance_configuration
           where $1::uuid is null or id > $1 order by id limit $2"#,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Deletes a configuration; its machines fall back to their default window.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!("delete from maintenance_configuration where id = $1", id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The configuration that applies to a machine, and how it matched: a configuration naming
/// the machine beats one matching its labels, which beats one matching its region; among
/// equals the oldest wins. `None`: the machine keeps its default off-peak window.
pub async fn for_machine(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    labels: &Value,
    region: &str,
) -> Result<Option<(Configuration, ScopeMatch)>, StoreError> {
    let row = sqlx::query!(
        r#"select c.id, c.name, c.body, c.created_at, c.updated_at, a.rank as "rank!"
           from applicable_configuration($1, $2, $3) a
           join maintenance_configuration c on c.id = a.configuration_id"#,
        machine_id,
        labels,
        region
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let how = match r.rank {
            1 => ScopeMatch::MachineId,
            2 => ScopeMatch::Label,
            _ => ScopeMatch::Region,
        };
        (
            Configuration {
                id: r.id,
                name: r.name,
                body: r.body,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            how,
        )
    }))
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
