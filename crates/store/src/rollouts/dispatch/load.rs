//! What a tick reads: the snapshot of the unfinished rollouts, in the tick's transaction.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{HealthStatus, JobState};
use hotpatch_domain::rollout::snapshot::{
    BatchRow, Candidate, EndedJob, HealthReport, RolloutRow, Snapshot, Tally,
};
use sqlx::{PgConnection, PgExecutor};

use crate::error::StoreError;
use crate::rollouts::parse_install;

fn decode<T: FromStr>(what: &str, s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Decode(format!("unexpected {what} {s:?}")))
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Locks the rows of the unfinished rollouts for the rest of the tick's transaction, so that
/// the operator's pause, resume and cancel (which start at the rollout's row) wait for the tick,
/// or the tick for them, instead of deadlocking with it over machines and batches taken in the
/// other order. `for no key update`: the jobs the tick enqueues still take their key share on
/// the rollout. Returns how many it locked.
pub async fn lock_rollouts(db: impl PgExecutor<'_>) -> Result<usize, StoreError> {
    let ids = sqlx::query_scalar!(
        "select id from rollout where state in ('running', 'paused', 'halted') order by id for no key update"
    )
    .fetch_all(db)
    .await?;
    Ok(ids.len())
}

/// What a tick reads, in its transaction after [`lock_rollouts`]: the unfinished rollouts with
/// their unfinished batches (machines counted by state for the open ones), the queued machines
/// whose job ended, the health reports newer than installs, and at most `candidates` machines
/// that may install or have missed their window at `now` (those that cannot install now because
/// another disruptive job holds them come last, so they never crowd out the others).
pub async fn load(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    candidates: i64,
) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        rollouts: rollouts(&mut *conn).await?,
        ended_jobs: ended_jobs(&mut *conn).await?,
        health: health_reports(&mut *conn).await?,
        candidates: candidate_rows(&mut *conn, now, candidates).await?,
    })
}

async fn rollouts(conn: &mut PgConnection) -> Result<Vec<RolloutRow>, StoreError> {
    let rows = sqlx::query!(
        r#"select r.id, r.state as rollout_state, r.failure_threshold_percent,
                  b.batch_index as "batch_index?", b.wave as "wave?", b.region as "region?", b.zone,
                  b.state as "batch_state?",
                  coalesce(c.pending, 0) as "pending!", coalesce(c.queued, 0) as "queued!",
                  coalesce(c.awaiting, 0) as "awaiting!", coalesce(c.healthy, 0) as "healthy!",
                  coalesce(c.unhealthy, 0) as "unhealthy!", coalesce(c.failed, 0) as "failed!"
           from rollout r
           left join rollout_batch b on b.rollout_id = r.id and b.state in ('pending', 'open', 'halted')
           -- Only open batches are counted: the condition on `b` inside the lateral is checked
           -- once per batch, so the machines of pending batches (most of a large rollout) are
           -- never read. As a join condition PostgreSQL read them all and filtered afterwards.
           left join lateral (
               select count(*) filter (where m.state = 'pending') as pending,
                      count(*) filter (where m.state = 'queued') as queued,
                      count(*) filter (where m.state = 'succeeded' and m.healthy is null) as awaiting,
                      count(*) filter (where m.state = 'succeeded' and m.healthy) as healthy,
                      count(*) filter (where m.state = 'succeeded' and not m.healthy) as unhealthy,
                      count(*) filter (where m.state = 'failed') as failed
               from rollout_machine m
               where b.state = 'open' and m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
           ) c on true
           where r.state in ('running', 'paused', 'halted')
           order by r.id, b.batch_index"#,
    )
    .fetch_all(conn)
    .await?;
    let mut out: Vec<RolloutRow> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|last| last.id != r.id) {
            out.push(RolloutRow {
                id: r.id,
                state: r.rollout_state.parse()?,
                failure_threshold_percent: u32::try_from(r.failure_threshold_percent).unwrap_or(0),
                batches: Vec::new(),
            });
        }
        let (Some(index), Some(wave), Some(region), Some(state)) =
            (r.batch_index, r.wave, r.region, r.batch_state)
        else {
            continue; // a rollout with no unfinished batch left
        };
        let machines = Tally {
            pending: count(r.pending),
            queued: count(r.queued),
            awaiting_health: count(r.awaiting),
            healthy: count(r.healthy),
            unhealthy: count(r.unhealthy),
            failed: count(r.failed),
        };
        let batch = BatchRow { index, wave, region, zone: r.zone, state: state.parse()?, machines };
        if let Some(last) = out.last_mut() {
            last.batches.push(batch);
        }
    }
    Ok(out)
}

async fn ended_jobs(conn: &mut PgConnection) -> Result<Vec<EndedJob>, StoreError> {
    let rows = sqlx::query!(
        r#"select m.rollout_id, m.batch_index, m.machine_id, j.id as job_id, j.state, j.error
           from rollout_machine m join job j on j.id = m.job_id
           where m.state = 'queued' and j.state in ('succeeded', 'failed', 'canceled')
           order by m.rollout_id, m.machine_id"#,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(EndedJob {
                rollout_id: r.rollout_id,
                batch_index: r.batch_index,
                machine_id: r.machine_id,
                job_id: r.job_id,
                state: decode::<JobState>("job state", &r.state)?,
                error: r.error,
            })
        })
        .collect()
}

/// Reports of agents of machines that installed (or whose job just succeeded) in open or halted
/// batches, newer than the install, that differ from what the machine shows.
async fn health_reports(conn: &mut PgConnection) -> Result<Vec<HealthReport>, StoreError> {
    let rows = sqlx::query!(
        r#"select m.rollout_id, m.batch_index, m.machine_id, m.state, m.healthy, j.finished_at,
                  a.health_status as "health_status!", a.health_reported_at as "health_reported_at!"
           from rollout_batch b
           join rollout_machine m on m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
           join job j on j.id = m.job_id
           join machine_agent a on a.machine_id = m.machine_id
           where b.state in ('open', 'halted')
             and (m.state = 'succeeded' or (m.state = 'queued' and j.state = 'succeeded'))
             and a.health_status is not null and a.health_reported_at > j.finished_at
             and m.healthy is distinct from (a.health_status = 'healthy')
           order by m.rollout_id, m.machine_id"#,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(HealthReport {
                rollout_id: r.rollout_id,
                batch_index: r.batch_index,
                machine_id: r.machine_id,
                state: r.state.parse()?,
                healthy: r.healthy,
                job_finished_at: r.finished_at,
                status: decode::<HealthStatus>("health status", &r.health_status)?,
                reported_at: r.health_reported_at,
            })
        })
        .collect()
}

/// Machines pending in open batches of running rollouts whose window started (and in pending
/// batches, which may open in this very tick: after the others), and machines whose unclaimed
/// job's window ended (any unfinished rollout).
async fn candidate_rows(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let rows = sqlx::query!(
        r#"select rollout_id as "rollout_id!", batch_index as "batch_index!", machine_id as "machine_id!",
                  state as "state!", job_id, window_start as "window_start!", window_end as "window_end!",
                  attempts as "attempts!", busy as "busy!", release_id as "release_id!", install as "install!",
                  reboot as "reboot!"
           from (
               select m.rollout_id, m.batch_index, m.machine_id, m.state, m.job_id, m.window_start,
                      m.window_end, m.attempts, m.release_id, m.install, m.reboot, b.state = 'open' as open,
                      exists (select 1 from job j
                              where j.machine_id = m.machine_id and j.kind in ('install', 'rollback', 'reboot')
                                and j.state in ('queued', 'leased')) as busy
               from rollout r
               join rollout_batch b on b.rollout_id = r.id and b.state in ('open', 'pending')
               join rollout_machine m on m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
               where r.state = 'running' and m.state = 'pending' and m.window_start <= $1
               union all
               select m.rollout_id, m.batch_index, m.machine_id, m.state, m.job_id, m.window_start,
                      m.window_end, m.attempts, m.release_id, m.install, m.reboot, true, false
               from rollout_machine m join job j on j.id = m.job_id
               where m.state = 'queued' and j.state = 'queued' and m.window_end <= $1) as c
           order by (busy and window_end > $1), not open, window_end, rollout_id, machine_id
           limit $2"#,
        now,
        limit,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Candidate {
                rollout_id: r.rollout_id,
                batch_index: r.batch_index,
                machine_id: r.machine_id,
                state: r.state.parse()?,
                job_id: r.job_id,
                window_start: r.window_start,
                window_end: r.window_end,
                attempts: r.attempts,
                busy: r.busy,
                release_id: r.release_id,
                install: parse_install(&r.install)?,
                reboot: r.reboot,
            })
        })
        .collect()
}
