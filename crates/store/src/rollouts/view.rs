//! Reading rollouts: one with its progress (counts per wave and batch), a page of them, and the
//! rollout a machine is in (patch status).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{BatchState, InstallState, Rollout, RolloutRow, RolloutState};
use crate::error::StoreError;

/// Machines by install state; `healthy` and `unhealthy` split the succeeded ones that reported
/// health since their install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstallCounts {
    /// Every machine.
    pub total: i64,
    /// Waiting for their batch or window.
    pub pending: i64,
    /// With a job enqueued or running.
    pub queued: i64,
    /// Installed.
    pub succeeded: i64,
    /// Failed to install.
    pub failed: i64,
    /// Left out when the rollout was canceled.
    pub canceled: i64,
    /// Installed and reported healthy.
    pub healthy: i64,
    /// Installed and reported unhealthy.
    pub unhealthy: i64,
}

impl InstallCounts {
    fn add(&mut self, o: &InstallCounts) {
        self.total += o.total;
        self.pending += o.pending;
        self.queued += o.queued;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.canceled += o.canceled;
        self.healthy += o.healthy;
        self.unhealthy += o.unhealthy;
    }

    /// Machines that have not installed the release (pending, queued or failed).
    pub fn unfinished(&self) -> i64 {
        self.pending + self.queued + self.failed
    }
}

/// One batch and its machines' progress.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProgress {
    /// Position in the plan, from 1.
    pub index: i32,
    /// Its wave, from 1.
    pub wave: i32,
    /// Region.
    pub region: String,
    /// Availability zone.
    pub zone: Option<String>,
    /// Where it is.
    pub state: BatchState,
    /// The planner's estimate of its start.
    pub planned_start: DateTime<Utc>,
    /// The planner's estimate of its end.
    pub planned_end: DateTime<Utc>,
    /// When it opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When it succeeded or was canceled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its machines.
    pub machines: InstallCounts,
    /// When the next install of its waiting machines can start: the earliest start of their
    /// windows, or the end of the window of one that already tried in it (it goes on in the next).
    pub next_install_at: Option<DateTime<Utc>>,
}

/// One wave: its batches and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveProgress {
    /// Position, from 1.
    pub wave: i32,
    /// Its regions, in the order of their first batch.
    pub regions: Vec<String>,
    /// Its machines.
    pub machines: InstallCounts,
    /// Its batches, in order.
    pub batches: Vec<BatchProgress>,
}

impl WaveProgress {
    fn push(&mut self, batch: BatchProgress) {
        if !self.regions.contains(&batch.region) {
            self.regions.push(batch.region.clone());
        }
        self.machines.add(&batch.machines);
        self.batches.push(batch);
    }
}

/// A rollout with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutView {
    /// The rollout (state, halted reason, deadline, expected finish, …).
    pub rollout: Rollout,
    /// Every machine.
    pub machines: InstallCounts,
    /// Waves in order.
    pub waves: Vec<WaveProgress>,
    /// When it is past its deadline and not finished: the machines that have not installed
    /// (pending, queued or failed).
    pub overdue_machines: Option<i64>,
    /// When the next install can start, over the open batches (see
    /// [`BatchProgress::next_install_at`]); `None` when none waits, e.g. between batches.
    pub next_install_at: Option<DateTime<Utc>>,
}

/// The rollout with its progress at `now` (which decides whether it is overdue); `None` when
/// there is no such rollout. Counts every machine of the rollout (one pass over its rows).
pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<RolloutView>, StoreError> {
    let Some(rollout) = rollout(&mut *conn, id).await? else {
        return Ok(None);
    };
    let batches = batch_progress(&mut *conn, id).await?;
    let mut machines = InstallCounts::default();
    for batch in &batches {
        machines.add(&batch.machines);
    }
    let waves = by_wave(batches);
    let overdue_machines = rollout.is_overdue(now).then(|| machines.unfinished());
    let next_install_at = waves
        .iter()
        .flat_map(|w| &w.batches)
        .filter(|b| b.state == BatchState::Open)
        .filter_map(|b| b.next_install_at)
        .min();
    Ok(Some(RolloutView { rollout, machines, waves, overdue_machines, next_install_at }))
}

/// The rollout `id`, without its progress.
async fn rollout(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Rollout>, StoreError> {
    let row = sqlx::query_as!(
        RolloutRow,
        "select id, release_id, selector, options, state, halted_reason, automatic, created_by, deadline,
                expected_finish, machine_count, created_at, updated_at, finished_at
         from rollout where id = $1",
        id,
    )
    .fetch_optional(db)
    .await?;
    row.map(Rollout::try_from).transpose()
}

/// Every batch of the rollout `id`, in order, with its machines counted by install state.
async fn batch_progress(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<BatchProgress>, StoreError> {
    let rows = sqlx::query!(
        r#"with counts as (
               select batch_index,
                      count(*) as total,
                      count(*) filter (where state = 'pending') as pending,
                      count(*) filter (where state = 'queued') as queued,
                      count(*) filter (where state = 'succeeded') as succeeded,
                      count(*) filter (where state = 'failed') as failed,
                      count(*) filter (where state = 'canceled') as canceled,
                      count(*) filter (where healthy) as healthy,
                      count(*) filter (where not healthy) as unhealthy,
                      min(case when job_id is null then window_start else window_end end)
                          filter (where state = 'pending') as next_install_at
               from rollout_machine where rollout_id = $1
               group by batch_index)
           select b.batch_index, b.wave, b.region, b.zone, b.state, b.planned_start, b.planned_end,
                  b.opened_at, b.finished_at,
                  coalesce(c.total, 0) as "total!", coalesce(c.pending, 0) as "pending!",
                  coalesce(c.queued, 0) as "queued!", coalesce(c.succeeded, 0) as "succeeded!",
                  coalesce(c.failed, 0) as "failed!", coalesce(c.canceled, 0) as "canceled!",
                  coalesce(c.healthy, 0) as "healthy!", coalesce(c.unhealthy, 0) as "unhealthy!",
                  c.next_install_at
           from rollout_batch b left join counts c on c.batch_index = b.batch_index
           where b.rollout_id = $1
           order by b.batch_index"#,
        id,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(BatchProgress {
                index: r.batch_index,
                wave: r.wave,
                region: r.region,
                zone: r.zone,
                state: r.state.parse()?,
                planned_start: r.planned_start,
                planned_end: r.planned_end,
                opened_at: r.opened_at,
                finished_at: r.finished_at,
                machines: InstallCounts {
                    total: r.total,
                    pending: r.pending,
                    queued: r.queued,
                    succeeded: r.succeeded,
                    failed: r.failed,
                    canceled: r.canceled,
                    healthy: r.healthy,
                    unhealthy: r.unhealthy,
                },
                next_install_at: r.next_install_at,
            })
        })
        .collect()
}

/// Batches (in plan order) grouped into their waves.
fn by_wave(batches: Vec<BatchProgress>) -> Vec<WaveProgress> {
    let mut waves: Vec<WaveProgress> = Vec::new();
    for batch in batches {
        // Batches are numbered across the plan wave after wave, so a wave's batches are adjacent.
        match waves.last_mut() {
            Some(wave) if wave.wave == batch.wave => wave.push(batch),
            _ => {
                let mut wave = WaveProgress {
                    wave: batch.wave,
                    regions: vec![],
                    machines: InstallCounts::default(),
                    batches: vec![],
                };
                wave.push(batch);
                waves.push(wave);
            }
        }
    }
    waves
}

/// A page of rollouts, newest first: those created before the rollout `before` (the cursor), at
/// most `limit`, only in `state` when given. Without progress counts (they cost a pass over each
/// rollout's machines: [`get`] has them); [`Rollout::is_overdue`] says which are overdue.
pub async fn list(
    db: impl PgExecutor<'_>,
    state: Option<RolloutState>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Rollout>, StoreError> {
    let rows = sqlx::query_as!(
        RolloutRow,
        "select id, release_id, selector, options, state, halted_reason, automatic, created_by, deadline,
                expected_finish, machine_count, created_at, updated_at, finished_at
         from rollout
         where ($1::uuid is null or id < $1) and ($2::text is null or state = $2)
         order by id desc
         limit $3",
        before,
        state.map(RolloutState::as_str),
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Rollout::try_from).collect()
}

/// Where a machine stands in a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRollout {
    /// The rollout.
    pub rollout_id: Uuid,
    /// The rollout's state.
    pub rollout_state: RolloutState,
    /// The machine's install in it.
    pub state: InstallState,
    /// Its batch.
    pub batch_index: i32,
    /// Its current window.
    pub window_start: DateTime<Utc>,
    /// End of its current window.
    pub window_end: DateTime<Utc>,
    /// Windows given so far (the planned one is 1).
    pub attempts: i32,
}

/// The machine's latest rollout that is running, paused or halted; `None` when it is in none.
pub async fn machine_rollout(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
) -> Result<Option<MachineRollout>, StoreError> {
    let row = sqlx::query!(
        "select m.rollout_id, r.state as rollout_state, m.state, m.batch_index, m.window_start, m.window_end,
                m.attempts
         from rollout_machine m join rollout r on r.id = m.rollout_id
         where m.machine_id = $1 and r.state in ('running', 'paused', 'halted')
         order by m.rollout_id desc
         limit 1",
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(MachineRollout {
            rollout_id: r.rollout_id,
            rollout_state: r.rollout_state.parse()?,
            state: r.state.parse()?,
            batch_index: r.batch_index,
            window_start: r.window_start,
            window_end: r.window_end,
            attempts: r.attempts,
        })
    })
    .transpose()
}
