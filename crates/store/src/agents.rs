//! What agents report about their machines: liveness (`last_seen_at`), health, the last
//! assessment (inventory), and the schedule of the periodic assessment.

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{AvailableUpdate, Health, InstalledUpdate, Inventory};
use hotpatch_domain::InstalledReleases;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::StoreError;

/// An agent's liveness and last health report.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    /// Its last request.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Its last health report.
    pub health: Option<Health>,
    /// When it reported health.
    pub health_reported_at: Option<DateTime<Utc>>,
    /// When the periodic assessment is due.
    pub next_assessment_at: DateTime<Utc>,
}

/// The last assessment of a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInventory {
    /// OS build as the agent saw it.
    pub os_build: Option<String>,
    /// A reboot is pending.
    pub reboot_pending: bool,
    /// Installed updates.
    pub installed_updates: Vec<InstalledUpdate>,
    /// Available updates.
    pub available_updates: Vec<AvailableUpdate>,
    /// When it was assessed.
    pub assessed_at: DateTime<Utc>,
}

/// Starts tracking a machine's agent (when its agent token is issued); the first periodic
/// assessment is due at `first_assessment_at`. Keeps the schedule of an agent already tracked.
pub async fn ensure(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    first_assessment_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into machine_agent (machine_id, next_assessment_at) values ($1, $2)
         on conflict (machine_id) do nothing",
        machine_id,
        first_assessment_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records when agents were last seen, for a batch of `(machine, instant)` marks (a replica
/// collects its agents' claims and writes them together: one statement per batch instead of a
/// row write per request). A mark never moves `last_seen_at` back. Rows another transaction
/// holds (the maintenance tick rescheduling an assessment) are skipped rather than waited for,
/// which could deadlock; their ids are returned so the caller keeps them for its next batch.
pub async fn mark_seen(
    db: impl PgExecutor<'_>,
    seen: &[(Uuid, DateTime<Utc>)],
) -> Result<Vec<Uuid>, StoreError> {
    let (ids, ats): (Vec<Uuid>, Vec<DateTime<Utc>>) = seen.iter().copied().unzip();
    let skipped = sqlx::query_scalar!(
        r#"with mark as (
               select * from unnest($1::uuid[], $2::timestamptz[]) as m (machine_id, seen_at)),
           held as (
               select a.machine_id from machine_agent a join mark using (machine_id)
               order by a.machine_id
               for update of a skip locked),
           marked as (
               update machine_agent a set last_seen_at = mark.seen_at, updated_at = mark.seen_at
               from mark join held using (machine_id)
               where a.machine_id = mark.machine_id
                 and (a.last_seen_at is null or a.last_seen_at < mark.seen_at))
           select mark.machine_id as "machine_id!" from mark
           where mark.machine_id not in (select machine_id from held)
             and exists (select 1 from machine_agent a where a.machine_id = mark.machine_id)"#,
        &ids,
        &ats,
    )
    .fetch_all(db)
    .await?;
    Ok(skipped)
}

/// The machine's agent state; `None` when it never had an agent.
pub async fn get(db: impl PgExecutor<'_>, machine_id: Uuid) -> Result<Option<AgentState>, StoreError> {
    let row = sqlx::query!(
        "select last_seen_at, health, health_reported_at, next_assessment_at
         from machine_agent where machine_id = $1",
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(AgentState {
            last_seen_at: r.last_seen_at,
            health: r.health.map(decode).transpose()?,
            health_reported_at: r.health_reported_at,
            next_assessment_at: r.next_assessment_at,
        })
    })
    .transpose()
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Decode(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Decode(e.to_string()))
}

/// Records a health report.
pub async fn record_health(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    health: &Health,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let status: &str = health.status.into();
    sqlx::query!(
        "insert into machine_agent (machine_id, last_seen_at, health_status, health, health_reported_at, next_assessment_at)
         values ($1, $2, $3, $4, $2, $2)
         on conflict (machine_id) do update set last_seen_at = $2, health_status = $3, health = $4,
             health_reported_at = $2, updated_at = $2",
        machine_id,
        now,
        status,
        encode(health)?,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// An assessment as it is recorded: the agent's inventory and what the service decided from it.
#[derive(Debug, Clone, Copy)]
pub struct InventoryWrite<'a> {
    /// The inventory, stored as reported.
    pub inventory: &'a Inventory,
    /// The machine's installed state the inventory shows; `None` keeps the stored value.
    pub installed: InstalledReleases,
    /// A recommended update is available.
    pub recommended_pending: bool,
}

/// Records an assessment: the inventory replaces the last one; the machine's installed state
/// takes the releases decided from it (a `None` keeps the stored one) and the reported reboot
/// flag; the next periodic assessment is due at `next_assessment_at`.
pub async fn record_inventory(
    conn: &mut PgConnection,
    machine_id: Uuid,
    write: &InventoryWrite<'_>,
    now: DateTime<Utc>,
    next_assessment_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let inventory = write.inventory;
    sqlx::query!(
        "insert into machine_inventory (machine_id, os_build, reboot_pending, installed_updates,
                                        available_updates, recommended_pending, assessed_at, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7, $7)
         on conflict (machine_id) do update set os_build = $2, reboot_pending = $3, installed_updates = $4,
             available_updates = $5, recommended_pending = $6, assessed_at = $7, updated_at = $7",
        machine_id,
        inventory.os_build.to_string(),
        inventory.reboot_pending,
        encode(&inventory.installed_updates)?,
        encode(&inventory.available_updates)?,
        write.recommended_pending,
        now,
    )
    .execute(&mut *conn)
    .await?;
    // An assessment that shows no release leaves what was known (an unknown id is no news).
    sqlx::query!(
        "insert into machine_patch_state (machine_id, current_baseline_id, latest_installed_id, reboot_pending,
                                          created_at, updated_at)
         values ($1, $2, $3, $4, $5, $5)
         on conflict (machine_id) do update set
             current_baseline_id = coalesce(excluded.current_baseline_id, machine_patch_state.current_baseline_id),
             latest_installed_id = coalesce(excluded.latest_installed_id, machine_patch_state.latest_installed_id),
             reboot_pending = excluded.reboot_pending, updated_at = $5",
        machine_id,
        write.installed.current_baseline,
        write.installed.latest_installed,
        inventory.reboot_pending,
        now,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into machine_agent (machine_id, last_seen_at, next_assessment_at) values ($1, $2, $3)
         on conflict (machine_id) do update set last_seen_at = $2, next_assessment_at = $3, updated_at = $2",
        machine_id,
        now,
        next_assessment_at,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The machine's last assessment; `None` before the first.
pub async fn inventory(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
) -> Result<Option<StoredInventory>, StoreError> {
    let row = sqlx::query!(
        "select os_build, reboot_pending, installed_updates, available_updates, assessed_at
         from machine_inventory where machine_id = $1",
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(StoredInventory {
            os_build: r.os_build,
            reboot_pending: r.reboot_pending,
            installed_updates: decode(r.installed_updates)?,
            available_updates: decode(r.available_updates)?,
            assessed_at: r.assessed_at,
        })
    })
    .transpose()
}

/// Machines whose periodic assessment is due at `now`, at most `limit`; in the same statement
/// their next assessment is pushed to `now + interval ± 10%` (jittered per machine, so a fleet
/// enrolled together drifts apart), so each due machine is returned once. Locked rows are
/// skipped: two replicas never take the same machine.
pub async fn take_due_assessments(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    interval: TimeDelta,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let seconds = interval.num_milliseconds() as f64 / 1000.0;
    let due = sqlx::query_scalar!(
        "update machine_agent
         set next_assessment_at = $1 + make_interval(secs => $2 * (0.9 + 0.2 * random())), updated_at = $1
         where machine_id in (
             select machine_id from machine_agent where next_assessment_at <= $1
             order by next_assessment_at limit $3 for update skip locked)
           and next_assessment_at <= $1
         returning machine_id",
        now,
        seconds,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(due)
}

/// Of `machine_ids`, the machines whose agent has not been seen since `seen_after` (or never):
/// `(id, name)` by name. Marks a replica has not written yet are the caller's to consider.
pub async fn disconnected(
    db: impl PgExecutor<'_>,
    machine_ids: &[Uuid],
    seen_after: DateTime<Utc>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows = sqlx::query!(
        "select m.id, m.name from machine m
         left join machine_agent a on a.machine_id = m.id
         where m.id = any($1::uuid[]) and (a.last_seen_at is null or a.last_seen_at < $2)
         order by m.name",
        machine_ids,
        seen_after,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}
