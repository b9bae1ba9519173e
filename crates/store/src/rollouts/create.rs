//! Writing a rollout: the rollout, its batches and every machine of its plan, in the caller's
//! transaction.

use chrono::{DateTime, Utc};
use hotpatch_scheduler::rollout::{PlannedMachine, RolloutPlan};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{install_str, Rollout, RolloutRow};
use crate::error::{unique_violation, StoreError};

/// Machines written per statement: ten arrays of this many elements stay well inside one
/// message, and a rollout of 100,000 machines takes ten round trips.
const CHUNK: usize = 10_000;

/// A rollout to write. The release and the options are the plan's.
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
    /// The plan.
    pub plan: &'a RolloutPlan,
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
    let machine_count: usize = plan.waves.iter().flat_map(|w| &w.batches).map(|b| b.machines.len()).sum();
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
        count(machine_count)?,
        now,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(unique_violation)?;

    write_batches(conn, new.id, plan, now).await?;
    write_machines(conn, new.id, plan, now).await?;
    row.try_into()
}

/// A count or index as the `integer` it is stored as.
fn count(n: usize) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| StoreError::Decode(format!("{n} does not fit a rollout column")))
}

/// Every batch, in one statement (a plan has a few thousand at most).
async fn write_batches(
    conn: &mut PgConnection,
    rollout_id: Uuid,
    plan: &RolloutPlan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let batches: Vec<_> =
        plan.waves.iter().flat_map(|w| w.batches.iter().map(move |b| (w.index, b))).collect();
    let (mut index, mut wave, mut region, mut zone, mut start, mut end) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (w, b) in batches {
        index.push(count(b.index)?);
        wave.push(count(w)?);
        region.push(b.region.clone());
        zone.push(b.zone.clone());
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
        &region,
        &zone as &[Option<String>],
        &start,
        &end,
        now,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One machine of the plan, flattened with its batch and wave.
struct Row<'a> {
    batch_index: i32,
    wave: i32,
    machine: &'a PlannedMachine,
}

/// Every machine, in chunks of [`CHUNK`] rows per statement. Rows go in machine id order, so the
/// primary key (machine first) is written page after page rather than all over.
async fn write_machines(
    conn: &mut PgConnection,
    rollout_id: Uuid,
    plan: &RolloutPlan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    for w in &plan.waves {
        for b in &w.batches {
            let (batch_index, wave) = (count(b.index)?, count(w.index)?);
            rows.extend(b.machines.iter().map(|machine| Row { batch_index, wave, machine }));
        }
    }
    rows.sort_unstable_by_key(|r| r.machine.machine_id);

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
        for r in chunk {
            let m = r.machine;
            machine.push(m.machine_id);
            batch.push(r.batch_index);
            wave.push(r.wave);
            install.push(install_str(m.install));
            release.push(m.release_id);
            reboot.push(m.reboot);
            set.push(m.availability_set.as_deref());
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
