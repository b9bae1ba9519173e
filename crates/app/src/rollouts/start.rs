//! Previewing and starting a rollout an operator asks for, and writing a plan as a rollout
//! (shared with the automatic rollouts of [`super::automatic`]).

use chrono::{DateTime, Utc};
use hotpatch_domain::operation::Selector;
use hotpatch_scheduler::rollout::RolloutPlan;
use hotpatch_store::rollouts::{self, BatchRow, MachineRow, NewRollout, PlanRows, RolloutView};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::options::OptionsBody;
use super::plan::{plan, Planned};
use super::plan_view::PlanView;
use super::view::RolloutDetail;
use crate::error::AppError;
use crate::App;

/// A dry run: the release, which machines (`{}` or absent: the whole fleet), how, from when.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The release to roll out.
    pub release_id: Uuid,
    /// Which machines; every given part must match.
    #[serde(default)]
    pub selector: Option<Selector>,
    /// How it goes.
    #[serde(default)]
    pub options: Option<OptionsBody>,
    /// When batch 1 opens (RFC 3339, default now).
    #[serde(default, deserialize_with = "hotpatch_domain::time::optional_instant")]
    pub start: Option<DateTime<Utc>>,
}

/// A rollout to start now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// The release to roll out.
    pub release_id: Uuid,
    /// Which machines; every given part must match.
    #[serde(default)]
    pub selector: Option<Selector>,
    /// How it goes.
    #[serde(default)]
    pub options: Option<OptionsBody>,
}

/// The plan a rollout of the release to the selected machines would follow; nothing is
/// written. Without `with_machines` the per-machine lists are left out (counts stay).
pub async fn preview(app: &App, req: PreviewRequest, with_machines: bool) -> Result<PlanView, AppError> {
    let start = req.start.unwrap_or_else(|| app.clock.now());
    let selector = req.selector.unwrap_or_default();
    let options = req.options.unwrap_or_default().options();
    let mut conn = app.pool.acquire().await?;
    let planned = plan(app, &mut conn, req.release_id, &selector, options, start).await?;
    Ok(PlanView::new(&planned, with_machines))
}

/// Starts a rollout of the release to the selected machines, planned from now, on behalf of
/// the token `created_by`. A plan in which no machine installs anything is refused (invalid
/// `selector`).
pub async fn start(app: &App, req: RolloutRequest, created_by: Uuid) -> Result<RolloutDetail, AppError> {
    let now = app.clock.now();
    let selector = req.selector.unwrap_or_default();
    let options = req.options.unwrap_or_default().options();
    let selector_json = serde_json::to_value(&selector).map_err(AppError::internal)?;
    let mut tx = app.pool.begin().await?;
    let planned = plan(app, &mut tx, req.release_id, &selector, options, now).await?;
    if planned.installs_nothing() {
        return Err(AppError::field(
            "selector",
            format!(
                "none of the {} selected machine(s) can install this release (see POST /v1/rollouts/preview)",
                planned.selected
            ),
        ));
    }
    let id = Uuid::now_v7();
    let view = write(&mut tx, id, &planned, &selector_json, Some(created_by), now).await?;
    tx.commit().await?;
    tracing::info!(rollout_id = %id, release_id = %req.release_id, machines = view.rollout.machine_count,
        "rollout started");
    if view.rollout.machine_count >= REFRESH_STATISTICS_AT {
        refresh_statistics(app).await;
    }
    Ok(RolloutDetail::new(&view, now))
}

/// Rollouts of at least this many machines refresh the rollout tables' statistics once written.
const REFRESH_STATISTICS_AT: i32 = 10_000;

/// Refreshes the rollout tables' statistics after a large rollout was written (see
/// `hotpatch_store::rollouts::refresh_statistics`); a failure only costs the dispatcher time
/// until autovacuum does it, so it is logged, not returned.
pub(crate) async fn refresh_statistics(app: &App) {
    if let Err(e) = rollouts::refresh_statistics(&app.pool).await {
        tracing::warn!(error = %e, "the rollout tables' statistics were not refreshed");
    }
}

/// Writes a planned rollout and reads it back (in the caller's transaction). `created_by`
/// `None` is an automatic rollout.
pub(crate) async fn write(
    conn: &mut PgConnection,
    id: Uuid,
    planned: &Planned,
    selector: &serde_json::Value,
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<RolloutView, AppError> {
    let plan = rows(&planned.plan)?;
    let new = NewRollout {
        id,
        selector,
        automatic: created_by.is_none(),
        created_by,
        deadline: planned.deadline,
        plan: &plan,
    };
    rollouts::create(&mut *conn, &new, now).await?;
    rollouts::get(&mut *conn, id, now)
        .await?
        .ok_or_else(|| AppError::internal(format!("rollout {id} vanished after create")))
}

/// A plan as the rollout tables hold it: its batches and machines as rows, numbered as the
/// planner numbered them.
pub fn rows(plan: &RolloutPlan) -> Result<PlanRows<'_>, AppError> {
    // Waves, batches and machines are bounded by the fleet a plan may select; a number beyond
    // an `integer` is a bug, not a request to refuse.
    let int =
        |n: usize| i32::try_from(n).map_err(|_| AppError::internal(format!("{n} does not fit a rollout")));
    let mut batches = Vec::new();
    let mut machines = Vec::new();
    for w in &plan.waves {
        let wave = int(w.index)?;
        for b in &w.batches {
            let index = int(b.index)?;
            batches.push(BatchRow {
                index,
                wave,
                region: &b.region,
                zone: b.zone.as_deref(),
                planned_start: b.planned_start,
                planned_end: b.planned_end,
            });
            machines.extend(b.machines.iter().map(|m| MachineRow {
                machine_id: m.machine_id,
                batch_index: index,
                wave,
                install: m.install,
                release_id: m.release_id,
                reboot: m.reboot,
                availability_set: m.availability_set.as_deref(),
                update_domain: m.update_domain,
                window_start: m.window_start,
                window_end: m.window_end,
            }));
        }
    }
    Ok(PlanRows {
        release_id: plan.release_id,
        options: plan.options.clone(),
        expected_finish: plan.expected_finish,
        batches,
        machines,
    })
}
