//! Writing a rollout: the rollout, its batches and every machine of its plan, in the caller's
//! transaction.
//!
//! The input is plain rows ([`PlanRows`]), the plan as the rollout tables hold it: the store
//! does not know the planner (the application layer turns a plan into rows).

use chrono::{DateTime, Utc};
use hotpatch_domain::rollout::{CycleKind, RolloutOptions};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{install_str, Rollout, RolloutRow};
use crate::error::{unique_violation, StoreError};

/// Machines written per statement: ten arrays of this many elements stay well inside one
/// message, and a rollout of 100,000 machines takes ten round trips.
const CHUNK: usize = 10_000;

/// A rollout to write.
#[derive(Debug, Clone, Copy)]
pub struct NewRollout<'a> {
    /// Its id (uuid v7, chosen by the caller so that it can answer with it).
    pub id: Uuid,
    /// The selector as requested, kept for the view.
    pub selector: &'a serde_json::Value,
    /// Started by publishing the release rather than by an operator.
    pub automatic: bool,
    /// The token that started it.
    pub created_by: Option<Uuid>,
    /// When automatic installs must be done: the release's `released_at` + 30 days.
    pub deadline: DateTime<Utc>,
    /// The plan, as rows.
    pub plan: &'a PlanRows<'a>,
}

/// A rollout plan as the rollout tables hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRows<'a> {
    /// The release rolled out.
    pub release_id: Uuid,
    /// The options it was planned with (the failure threshold is applied while it runs).
    pub options: RolloutOptions,
    /// The planner's estimate of its end (`None`: nothing to install).
    pub expected_finish: Option<DateTime<Utc>>,
    /// Every batch, in plan order.
    pub batches: Vec<BatchRow<'a>>,
    /// Every machine of every batch.
    pub machines: Vec<MachineRow<'a>>,
}

/// One batch of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow<'a> {
    /// Number across the plan, from 1.
    pub index: i32,
    /// Its wave, from 1.
    pub wave: i32,
    /// Region.
    pub region: &'a str,
    /// Availability zone (`None`: machines without one).
    pub zone: Option<&'a str>,
    /// The planner's estimate of its start.
    pub planned_start: DateTime<Utc>,
    /// The planner's estimate of its end.
    pub planned_end: DateTime<Utc>,
}

/// One machine of a plan, in its batch and window.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRow<'a> {
    /// The machine.
    pub machine_id: Uuid,
    /// Its batch's number.
    pub batch_index: i32,
    /// Its batch's wave.
    pub wave: i32,
    /// How it installs.
    pub install: CycleKind,
    /// What it installs: the rollout's release or the baseline it needs first.
    pub release_id: Uuid,
    /// Whether it reboots.
    pub reboot: bool,
    /// Its availability set.
    pub availability_set: Option<&'a str>,
    /// Its update domain.
    pub update_domain: Option<i32>,
    /// Its planned window's start.
    pub window_start: DateTime<Utc>,
    /// Its planned window's end.
    pub window_end: DateTime<Utc>,
}

/// Writes the rollout (state `running`), its batches (`pending`) and its machines (`pending`, in
/// their planned window, attempt 1). A second automatic rollout of one release is a
/// [`StoreError::Conflict`] on `rollout_one_automatic_per_release`.
///
/// Machines go in chunks of 10,000 rows per statement (`unnest` of one array per column), so a
/// plan of 100,000 machines is ten statements.
pub async fn create(
    conn: &mut PgConnection,
    new: &NewRollout<'_>,
    now: DateTime<Utc>,
) -> Result<Rollout, StoreError> {
    let plan = new.plan;
    let options = serde_json::to_value(&plan.options).map_err(|e| StoreError::Decode(e.to_string()))?;
    let threshold = i32::try_from(plan.options.failure_threshold_percent).unwrap_or(i32::MAX);
    let machine_count = i32::try_from(plan.machines.len())
        .map_err(|_| StoreError::Decode(format!("{} machines do not fit a rollout", plan.machines.len())))?;
    let row = sqlx::query_as!(
        RolloutRow,
        "insert into rollout (id, release_id, selector, options, failure_threshold_percent, automatic,
                              created_by, deadline, expected_finish, machine_count, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         returning id, release_id, selector, options, state, halted_reason, automatic, created_by, deadline,
                   expected_finish, machine_count, created_at, updated_at, finished_at",
        new.id,
        plan.release_id,
        new.selector,
        options,
        threshold,
        new.automatic,
        new.created_by,
        new.deadline,
        plan.expected_finish,
        machine_count,
        now,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(unique_violation)?;

    write_batches(conn, new.id, &plan.batches, now).await?;
    write_machines(conn, new.id, &plan.machines, now).await?;
    row.try_into()
}

/// Every batch, in one statement (a plan has a few thousand at most).
async fn write_batches(
    conn: &mut PgConnection,
    rollout_id: Uuid,
    batches: &[BatchRow<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let n = batches.len();
    let (mut index, mut wave, mut region, mut zone, mut start, mut end) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for b in batches {
        index.push(b.index);
        wave.push(b.wave);
        region.push(b.region);
        zone.push(b.zone);
        start.push(b.planned_start);
        end.push(b.planned_end);
    }
    sqlx::query!(
        "insert into rollout_batch (rollout_id, batch_index, wave, region, zone, planned_start, planned_end,
                                    created_at, updated_at)
         select $1, t.batch_index, t.wave, t.region, t.zone, t.planned_start, t.planned_end, $8, $8
         from unnest($2::integer[], $3::integer[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
              as t(batch_index, wave, region, zone, planned_start, planned_end)",
        rollout_id,
        &index,
        &wave,
        &region as &[&str],
        &zone as &[Option<&str>],
        &start,
        &end,
        now,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every machine, in chunks of [`CHUNK`] rows per statement. Rows go in machine id order, so the
/// primary key (machine first) is written page after page rather than all over.
async fn write_machines(
    conn: &mut PgConnection,
    rollout_id: Uuid,
    machines: &[MachineRow<'_>],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut rows: Vec<&MachineRow<'_>> = machines.iter().collect();
    rows.sort_unstable_by_key(|m| m.machine_id);

    for chunk in rows.chunks(CHUNK) {
        let n = chunk.len();
        let mut machine = Vec::with_capacity(n);
        let mut batch = Vec::with_capacity(n);
        let mut wave = Vec::with_capacity(n);
        let mut install = Vec::with_capacity(n);
        let mut release = Vec::with_capacity(n);
        let mut reboot = Vec::with_capacity(n);
        let mut set: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut domain = Vec::with_capacity(n);
        let mut start = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        for m in chunk {
            machine.push(m.machine_id);
            batch.push(m.batch_index);
            wave.push(m.wave);
            install.push(install_str(m.install));
            release.push(m.release_id);
            reboot.push(m.reboot);
            set.push(m.availability_set);
            domain.push(m.update_domain);
            start.push(m.window_start);
            end.push(m.window_end);
        }
        sqlx::query!(
            "insert into rollout_machine (rollout_id, machine_id, batch_index, wave, install, release_id, reboot,
                                          availability_set, update_domain, window_start, window_end,
                                          created_at, updated_at)
             select $1, t.machine_id, t.batch_index, t.wave, t.install, t.release_id, t.reboot,
                    t.availability_set, t.update_domain, t.window_start, t.window_end, $12, $12
             from unnest($2::uuid[], $3::integer[], $4::integer[], $5::text[], $6::uuid[], $7::boolean[],
                         $8::text[], $9::integer[], $10::timestamptz[], $11::timestamptz[])
                  as t(machine_id, batch_index, wave, install, release_id, reboot, availability_set,
                       update_domain, window_start, window_end)",
            rollout_id,
            &machine,
            &batch,
            &wave,
            &install as &[&str],
            &release,
            &reboot,
            &set as &[Option<&str>],
            &domain as &[Option<i32>],
            &start,
            &end,
            now,
        )
        .execute(&mut *conn)
        .await
        .map_err(unique_violation)?;
    }
    Ok(())
}

/// Refreshes PostgreSQL's statistics of the rollout tables, after a commit that grew them by
/// many rows: until autovacuum gets to it (a minute or more), the planner believes the tables
/// as small as before, and the dispatcher's next pass over a rollout of a million machines
/// took 20 s on plans made for a few rows instead of milliseconds (bench/million.sh).
pub async fn refresh_statistics(db: impl sqlx::PgExecutor<'_>) -> Result<(), StoreError> {
    sqlx::query("analyze rollout_machine, rollout_batch").execute(db).await?;
    Ok(())
}
