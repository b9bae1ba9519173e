//! Reading rollouts: a stored rollout as the API shows it, its header (lists) and its progress
//! by wave and batch.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hotpatch_store::rollouts::{
    self, BatchProgress, InstallCounts, Rollout, RolloutState, RolloutView, WaveProgress,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::options::OptionsView;
use crate::error::AppError;
use crate::App;

/// Machines by install state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    /// Every machine.
    pub total: i64,
    /// Waiting for their batch or window.
    pub pending: i64,
    /// A job is enqueued or running.
    pub queued: i64,
    /// Installed.
    pub succeeded: i64,
    /// Failed.
    pub failed: i64,
    /// Canceled before installing.
    pub canceled: i64,
    /// Installed and reported healthy.
    pub healthy: i64,
    /// Installed and reported unhealthy.
    pub unhealthy: i64,
}

impl From<&InstallCounts> for CountsView {
    fn from(c: &InstallCounts) -> Self {
        CountsView {
            total: c.total,
            pending: c.pending,
            queued: c.queued,
            succeeded: c.succeeded,
            failed: c.failed,
            canceled: c.canceled,
            healthy: c.healthy,
            unhealthy: c.unhealthy,
        }
    }
}

/// A rollout: what it rolls out, how, and where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutSummary {
    /// Identifier.
    pub id: Uuid,
    /// The release rolled out.
    pub release_id: Uuid,
    /// The selector as requested.
    #[schema(value_type = Object)]
    pub selector: serde_json::Value,
    /// The planner's options.
    pub options: OptionsView,
    /// `running`, `paused`, `halted`, `canceled` or `succeeded`.
    pub state: String,
    /// Why it halted (only when halted).
    pub halted_reason: Option<String>,
    /// Started by publishing the release.
    pub automatic: bool,
    /// The token that started it.
    pub created_by: Option<Uuid>,
    /// When automatic installs must be done (release + 30 days).
    pub deadline: DateTime<Utc>,
    /// The planner's estimate of its end.
    pub expected_finish: Option<DateTime<Utc>>,
    /// Past its deadline without having finished.
    pub overdue: bool,
    /// Machines in the plan.
    pub machine_count: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Ended (canceled or succeeded).
    pub finished_at: Option<DateTime<Utc>>,
}

impl RolloutSummary {
    /// The summary of `r` at `now`.
    pub fn new(r: &Rollout, now: DateTime<Utc>) -> Self {
        RolloutSummary {
            id: r.id,
            release_id: r.release_id,
            selector: r.selector.clone(),
            options: (&r.options).into(),
            state: r.state.as_str().to_owned(),
            halted_reason: r.halted_reason.clone(),
            automatic: r.automatic,
            created_by: r.created_by,
            deadline: r.deadline,
            expected_finish: r.expected_finish,
            overdue: r.is_overdue(now),
            machine_count: r.machine_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        }
    }
}

/// A batch's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchProgressView {
    /// Number across the rollout, from 1.
    pub index: i32,
    /// Its wave.
    pub wave: i32,
    /// Region.
    pub region: String,
    /// Availability zone.
    pub zone: Option<String>,
    /// `pending`, `open`, `succeeded`, `halted` or `canceled`.
    pub state: String,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned end.
    pub planned_end: DateTime<Utc>,
    /// When it opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its machines by state.
    pub counts: CountsView,
    /// When the next install of its waiting machines can start: the earliest start of their
    /// windows, or the end of the window of one that already tried in it (it goes on in the next).
    pub next_install_at: Option<DateTime<Utc>>,
}

impl From<&BatchProgress> for BatchProgressView {
    fn from(b: &BatchProgress) -> Self {
        BatchProgressView {
            index: b.index,
            wave: b.wave,
            region: b.region.clone(),
            zone: b.zone.clone(),
            state: b.state.as_str().to_owned(),
            planned_start: b.planned_start,
            planned_end: b.planned_end,
            opened_at: b.opened_at,
            finished_at: b.finished_at,
            counts: (&b.machines).into(),
            next_install_at: b.next_install_at,
        }
    }
}

/// A wave's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaveProgressView {
    /// Number, from 1.
    pub wave: i32,
    /// Its regions.
    pub regions: Vec<String>,
    /// Its machines by state.
    pub counts: CountsView,
    /// Its batches.
    pub batches: Vec<BatchProgressView>,
}

impl From<&WaveProgress> for WaveProgressView {
    fn from(w: &WaveProgress) -> Self {
        WaveProgressView {
            wave: w.wave,
            regions: w.regions.clone(),
            counts: (&w.machines).into(),
            batches: w.batches.iter().map(Into::into).collect(),
        }
    }
}

/// A rollout with its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutDetail {
    /// The rollout.
    #[serde(flatten)]
    pub rollout: RolloutSummary,
    /// Every machine by state.
    pub counts: CountsView,
    /// Batches by state.
    pub batches_by_state: BTreeMap<String, usize>,
    /// Waves in order, with their batches.
    pub waves: Vec<WaveProgressView>,
    /// When overdue: the machines that have not installed.
    pub overdue_machines: Option<i64>,
    /// When the next install can start, over the open batches (now, when a machine is inside
    /// its window; `null` when none waits, e.g. between batches).
    pub next_install_at: Option<DateTime<Utc>>,
}

impl RolloutDetail {
    /// The detail of `v` at `now`.
    pub fn new(v: &RolloutView, now: DateTime<Utc>) -> Self {
        let mut by_state = BTreeMap::new();
        for b in v.waves.iter().flat_map(|w| &w.batches) {
            *by_state.entry(b.state.as_str().to_owned()).or_insert(0) += 1;
        }
        let mut waves: Vec<WaveProgressView> = v.waves.iter().map(Into::into).collect();
        // A machine inside its window can start now: never show a start in the past.
        for b in waves.iter_mut().flat_map(|w| &mut w.batches) {
            b.next_install_at = b.next_install_at.map(|t| t.max(now));
        }
        RolloutDetail {
            rollout: RolloutSummary::new(&v.rollout, now),
            counts: (&v.machines).into(),
            batches_by_state: by_state,
            waves,
            overdue_machines: v.overdue_machines,
            next_install_at: v.next_install_at.map(|t| t.max(now)),
        }
    }
}

/// "no rollout {id}", the detail of a rollout that does not exist.
pub(crate) fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("no rollout {id}"))
}

/// A rollout with its progress by wave and batch.
pub async fn get(app: &App, id: Uuid) -> Result<RolloutDetail, AppError> {
    let now = app.clock.now();
    let mut conn = app.pool.acquire().await?;
    let view = rollouts::get(&mut conn, id, now).await?.ok_or_else(|| not_found(id))?;
    Ok(RolloutDetail::new(&view, now))
}

/// Rollouts newest first, created before the rollout `before`, at most `limit`, only in `state`
/// when given.
pub async fn list(
    app: &App,
    state: Option<RolloutState>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RolloutSummary>, AppError> {
    let now = app.clock.now();
    let rows = rollouts::list(&app.pool, state, before, limit).await?;
    Ok(rows.iter().map(|r| RolloutSummary::new(r, now)).collect())
}
