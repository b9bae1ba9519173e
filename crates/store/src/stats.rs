//! Counts for `/metrics`, read at scrape time. Each reads only unfinished rows through the
//! partial indexes the queue and the dispatcher already keep (`job_claimable_idx`,
//! `job_lease_expiry_idx`, `rollout_state_idx`, `rollout_machine_batch_idx`), so a scrape costs
//! what is in flight, never a pass over the fleet or the job history.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgExecutor;

use crate::error::StoreError;

/// Active jobs (queued or leased) of one kind and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveJobs {
    /// `assess`, `install`, `rollback` or `reboot`.
    pub kind: String,
    /// `queued` or `leased`.
    pub state: String,
    /// How many.
    pub jobs: i64,
    /// Of the queued ones, those claimable at `now` (their `run_after` passed).
    pub due: i64,
    /// The earliest `run_after` of those.
    pub oldest_due: Option<DateTime<Utc>>,
    /// The earliest `run_after` of those whose machine's agent is connected (seen within the
    /// silence after which an agent counts as lost): a job that waits while its agent calls is stuck, one
    /// whose agent is away is not.
    pub oldest_due_connected: Option<DateTime<Utc>>,
}

/// Active jobs by kind and state at `now`, in one statement (each job's agent row by its key).
/// One branch per state: with `state in (…)` PostgreSQL scans the whole table, with one state per
/// branch it uses that state's partial index.
pub async fn active_jobs(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    silence: TimeDelta,
) -> Result<Vec<ActiveJobs>, StoreError> {
    let rows = sqlx::query_as!(
        ActiveJobs,
        r#"select j.kind as "kind!", j.state as "state!", count(*) as "jobs!",
                  count(*) filter (where j.state = 'queued' and j.run_after <= $1) as "due!",
                  min(j.run_after) filter (where j.state = 'queued' and j.run_after <= $1) as oldest_due,
                  min(j.run_after) filter (where j.state = 'queued' and j.run_after <= $1
                                             and a.last_seen_at >= $1::timestamptz - $2::interval)
                      as oldest_due_connected
           from (select kind, state, run_after, machine_id from job where state = 'queued'
                 union all
                 select kind, state, run_after, machine_id from job where state = 'leased') j
           left join machine_agent a on a.machine_id = j.machine_id
           group by j.kind, j.state"#,
        now,
        crate::events::pg_interval(silence),
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// One count of [`rollouts`]: which series, the state, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutCount {
    /// `rollout` (rollouts by state), `machine` (machines of unfinished rollouts by install
    /// state) or `overdue` (unfinished rollouts past their deadline; `state` is empty).
    pub series: String,
    /// The state counted.
    pub state: String,
    /// How many.
    pub count: i64,
}

/// Rollouts by state, the machines of unfinished rollouts by install state, and the unfinished
/// rollouts past their deadline at `now` (as [`crate::rollouts::Rollout::is_overdue`] says), in
/// one statement. Finished rollouts' machines are history and are not read.
pub async fn rollouts(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Vec<RolloutCount>, StoreError> {
    let rows = sqlx::query_as!(
        RolloutCount,
        r#"select 'rollout' as "series!", state as "state!", count(*) as "count!"
             from rollout group by state
           union all
           select 'overdue', '', count(*)
             from rollout where state in ('running', 'paused', 'halted') and deadline < $1
           union all
           select 'machine', m.state, count(*)
             from rollout r join rollout_machine m on m.rollout_id = r.id
             where r.state in ('running', 'paused', 'halted')
             group by m.state"#,
        now
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Agents connected (seen within the silence after which one counts as lost) and lost (reported
/// lost and not seen since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentCounts {
    /// Seen recently.
    pub connected: i64,
    /// Silent since they were reported lost.
    pub lost: i64,
}

/// [`AgentCounts`] at `now`, an agent silent for `silence` counting as lost (as
/// [`crate::events::report_lost_agents`] says). This one reads every agent's row: the liveness
/// duty calls it on its leader, seldom, never a scrape.
pub async fn agents(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    silence: TimeDelta,
) -> Result<AgentCounts, StoreError> {
    let row = sqlx::query!(
        r#"select count(*) filter (where last_seen_at >= $1::timestamptz - $2::interval) as "connected!",
                  count(*) filter (where lost_reported_at >= last_seen_at) as "lost!"
           from machine_agent"#,
        now,
        crate::events::pg_interval(silence),
    )
    .fetch_one(db)
    .await?;
    Ok(AgentCounts { connected: row.connected, lost: row.lost })
}
