//! Planning a rollout from a request: the release, the selected machines and their windows, read
//! in bulk, then the pure planner; and the plan as `POST /v1/rollouts/preview` shows it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use hotpatch_domain::operation::Selector;
use hotpatch_scheduler::cycle::MachineState;
use hotpatch_scheduler::rollout::{
    plan_rollout, PlanWindow, RolloutError, RolloutMachine, RolloutOptions, RolloutPlan, RolloutRelease,
};
use hotpatch_scheduler::windows::Schedule;
use hotpatch_store::rollouts::{self, PlannerInput};
use hotpatch_store::{operations, releases};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, OrNotFound};
use crate::AppState;
use hotpatch_app::operations::MAX_SELECTED;

/// Automatic installs must be done this long after the release (DESIGN §1).
pub const DEADLINE_DAYS: i64 = 30;

/// How the rollout goes; every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsBody {
    /// Largest batch of machines outside availability sets, in percent of their region and zone
    /// (1–100, default 20; availability sets never go above 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_percent: Option<u32>,
    /// Failure rate above which the rollout halts, in percent (0–100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold_percent: Option<u32>,
    /// Regions to go first, in this order (the first is a canary wave of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_order: Option<Vec<String>>,
}

impl OptionsBody {
    /// The planner's options, defaults filled in.
    pub fn options(&self) -> RolloutOptions {
        let d = RolloutOptions::default();
        RolloutOptions {
            max_batch_percent: self.max_batch_percent.unwrap_or(d.max_batch_percent),
            failure_threshold_percent: self.failure_threshold_percent.unwrap_or(d.failure_threshold_percent),
            region_order: self.region_order.clone().unwrap_or_default(),
        }
    }
}

/// The options a rollout runs with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OptionsView {
    /// Largest batch outside availability sets, percent.
    pub max_batch_percent: u32,
    /// Failure rate above which it halts, percent.
    pub failure_threshold_percent: u32,
    /// Regions that go first.
    pub region_order: Vec<String>,
}

impl From<&RolloutOptions> for OptionsView {
    fn from(o: &RolloutOptions) -> Self {
        OptionsView {
            max_batch_percent: o.max_batch_percent,
            failure_threshold_percent: o.failure_threshold_percent,
            region_order: o.region_order.clone(),
        }
    }
}

/// The planner's refusal as a problem: request mistakes are 422 naming the field, a superseded
/// release 409.
pub fn refused(e: RolloutError) -> ApiError {
    match e {
        RolloutError::ReleaseSuperseded { .. } => ApiError::Conflict(e.to_string()),
        RolloutError::InvalidWindow { .. } => ApiError::Internal(e.to_string()),
        e => ApiError::Unprocessable { detail: e.to_string(), errors: vec![e.field_error()] },
    }
}

/// A plan and what the views need besides it.
pub struct Planned {
    /// The plan.
    pub plan: RolloutPlan,
    /// Release + 30 days.
    pub deadline: DateTime<Utc>,
    /// Machines the selector named.
    pub selected: usize,
    /// The schedules machines follow.
    pub schedules: Vec<Schedule>,
    /// Each machine's schedule, by index.
    pub schedule_of: HashMap<Uuid, usize>,
}

fn check_selector(s: &Selector) -> Result<(), ApiError> {
    if s.machine_ids.as_ref().is_some_and(|ids| ids.len() as i64 > MAX_SELECTED) {
        return Err(ApiError::field("selector.machine_ids", format!("at most {MAX_SELECTED} ids")));
    }
    if s.labels.as_ref().is_some_and(|l| l.len() > 50) {
        return Err(ApiError::field("selector.labels", "at most 50 labels"));
    }
    if s.regions.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(ApiError::field("selector.regions", "at most 500 regions"));
    }
    Ok(())
}

/// Whether the machine takes hotpatches (the rule of the patch status: switched on, eligible,
/// and for Arc enrolled in the preview).
fn takes_hotpatches(m: &PlannerInput) -> bool {
    hotpatch_domain::takes_hotpatches(m.hotpatch_enabled, m.eligible, m.platform, m.enrollment)
}

/// Plans the rollout of `release_id` to the machines of `selector` from `start`: three bulk reads
/// (machines with patch state and configuration, configurations, geo-pairs), then the planner.
pub async fn plan(
    state: &AppState,
    conn: &mut PgConnection,
    release_id: Uuid,
    selector: &Selector,
    options: RolloutOptions,
    start: DateTime<Utc>,
) -> Result<Planned, ApiError> {
    options.validate().map_err(refused)?;
    check_selector(selector)?;
    let release = releases::get(&mut *conn, release_id)
        .await
        .or_not_found(|| format!("no release with id {release_id}"))?
        .release;
    let catalog = releases::catalog_of(&mut *conn, release.spec.os).await?;
    let target = RolloutRelease::from_catalog(&release, &catalog).map_err(refused)?;
    if let Some(ids) = &selector.machine_ids {
        let unknown = operations::unknown_machines(&mut *conn, ids).await?;
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().take(20).map(Uuid::to_string).collect();
            return Err(ApiError::field(
                "selector.machine_ids",
                format!("{} unknown machine id(s): {}", unknown.len(), list.join(", ")),
            ));
        }
    }
    let inputs = rollouts::planner_inputs(&mut *conn, selector, MAX_SELECTED + 1).await?;
    if inputs.is_empty() {
        return Err(ApiError::field("selector", "names no machine"));
    }
    if inputs.len() as i64 > MAX_SELECTED {
        return Err(ApiError::field(
            "selector",
            format!("names more than {MAX_SELECTED} machines; narrow it"),
        ));
    }
    let configurations = configurations(&mut *conn).await?;
    let pairs = rollouts::region_pairs(&mut *conn).await?;

    // One schedule per (configuration, zone): machines share them.
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut schedule_of: HashMap<(Option<Uuid>, &'static str), usize> = HashMap::new();
    let mut machine_schedule: HashMap<Uuid, usize> = HashMap::with_capacity(inputs.len());
    let mut machines = Vec::with_capacity(inputs.len());
    for m in &inputs {
        let own = m.timezone.0;
        let key = (m.configuration_id, own.name());
        let index = match schedule_of.get(&key) {
            Some(&i) => i,
            None => {
                let schedule = match m.configuration_id.and_then(|id| configurations.get(&id)) {
                    Some((schedule, true)) => schedule.clone(),
                    Some((schedule, false)) => schedule.clone().with_timezone(own),
                    None => Schedule::daily_off_peak(
                        own,
                        state.settings.off_peak_start,
                        state.settings.off_peak_duration,
                    ),
                };
                schedules.push(schedule);
                schedule_of.insert(key, schedules.len() - 1);
                schedules.len() - 1
            }
        };
        machine_schedule.insert(m.id, index);
        machines.push(RolloutMachine {
            machine_id: m.id,
            os: m.os,
            orchestration: m.orchestration,
            region: m.region.clone(),
            availability_zone: m.availability_zone.clone(),
            availability_set: m.availability_set.clone(),
            update_domain: m.update_domain,
            state: MachineState {
                hotpatch: takes_hotpatches(m),
                current_baseline: m.current_baseline,
                latest_installed: m.latest_installed,
                reboot_pending: m.reboot_pending,
            },
        });
    }
    // Planning 100,000 machines is CPU work: off the async workers.
    let (plan, schedules, machine_schedule) = tokio::task::spawn_blocking(move || {
        let windows = |m: &RolloutMachine, from: DateTime<Utc>| {
            let schedule = &schedules[*machine_schedule.get(&m.machine_id)?];
            PlanWindow::first_of_schedule(schedule, from)
        };
        let plan = plan_rollout(&target, &machines, &pairs, &options, start, windows);
        (plan, schedules, machine_schedule)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("rollout planning: {e}")))?;
    let plan = plan.map_err(refused)?;
    Ok(Planned {
        plan,
        deadline: release.spec.released_at + TimeDelta::days(DEADLINE_DAYS),
        selected: inputs.len(),
        schedules,
        schedule_of: machine_schedule,
    })
}

/// Every configuration's schedule and whether it has its own zone, by id (read once per plan).
async fn configurations(conn: &mut PgConnection) -> Result<HashMap<Uuid, (Schedule, bool)>, ApiError> {
    let mut out = HashMap::new();
    for (id, body) in rollouts::configuration_bodies(conn).await? {
        let c = hotpatch_store::maintenance::load(id, body)?;
        out.insert(
            id,
            (Schedule::of_configuration(&c, hotpatch_scheduler::windows::Tz::UTC), c.timezone().is_some()),
        );
    }
    Ok(out)
}

/// A planned machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedMachineView {
    /// The machine.
    pub machine_id: Uuid,
    /// `hotpatch`, `baseline` or `cumulative_update`.
    pub install: String,
    /// What it installs: the rollout's release or the baseline it needs first.
    pub release_id: Uuid,
    /// Whether it reboots.
    pub reboot: bool,
    /// Its window's start, UTC.
    pub window_start: DateTime<Utc>,
    /// Its window's end, UTC.
    pub window_end: DateTime<Utc>,
    /// Start on the window's clock.
    #[schema(value_type = String)]
    pub window_start_local: DateTime<FixedOffset>,
    /// End on the window's clock.
    #[schema(value_type = String)]
    pub window_end_local: DateTime<FixedOffset>,
    /// The window's IANA zone.
    pub timezone: String,
}

/// A batch: machines of one region and zone that go together.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedBatchView {
    /// Number across the plan, from 1.
    pub index: usize,
    /// Its wave.
    pub wave: usize,
    /// Region.
    pub region: String,
    /// Availability zone (`null`: machines without one).
    pub zone: Option<String>,
    /// Earliest window start of its machines.
    pub planned_start: DateTime<Utc>,
    /// Latest window end of its machines.
    pub planned_end: DateTime<Utc>,
    /// How many machines.
    pub machine_count: usize,
    /// The machines (absent with `?machines=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machines: Option<Vec<PlannedMachineView>>,
}

/// A wave of regions (geo-pairs never share one).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedWaveView {
    /// Number, from 1.
    pub index: usize,
    /// Its regions, in order.
    pub regions: Vec<String>,
    /// Its first batch's start.
    pub planned_start: DateTime<Utc>,
    /// Its last batch's end.
    pub planned_end: DateTime<Utc>,
    /// Batch numbers in the wave.
    pub batches: Vec<usize>,
}

/// A machine left out, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnplannedView {
    /// The machine.
    pub machine_id: Uuid,
    /// `already_installed`, `other_os`, `not_automatic_by_platform` or `no_window`.
    pub reason: String,
}

/// Numbers of the plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanCounts {
    /// Machines the selector named.
    pub selected: usize,
    /// Machines in a batch.
    pub planned: usize,
    /// Machines left out.
    pub unplanned: usize,
    /// Left out, by reason.
    pub unplanned_by_reason: BTreeMap<String, usize>,
    /// Waves.
    pub waves: usize,
    /// Batches.
    pub batches: usize,
}

/// A rollout plan; nothing is written.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// The release.
    pub release_id: Uuid,
    /// When batch 1 opens.
    pub start: DateTime<Utc>,
    /// The options, defaults filled in.
    pub options: OptionsView,
    /// Waves in order.
    pub waves: Vec<PlannedWaveView>,
    /// Batches in order.
    pub batches: Vec<PlannedBatchView>,
    /// The last batch's end (`null`: nothing to install).
    pub expected_finish: Option<DateTime<Utc>>,
    /// Release + 30 days.
    pub deadline: DateTime<Utc>,
    /// Whether the expected finish is after the deadline.
    pub overdue: bool,
    /// Machines left out (absent with `?machines=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unplanned: Option<Vec<UnplannedView>>,
    /// Counts.
    pub counts: PlanCounts,
}

/// A serde-only value's wire name.
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

impl PlanView {
    /// The view of a plan, with or without the per-machine lists.
    pub fn new(p: &Planned, with_machines: bool) -> PlanView {
        let plan = &p.plan;
        let mut batches = Vec::new();
        let mut waves = Vec::new();
        for w in &plan.waves {
            for b in &w.batches {
                let machines = with_machines.then(|| {
                    b.machines
                        .iter()
                        .map(|m| {
                            let tz = p.schedule_of.get(&m.machine_id).map(|&i| p.schedules[i].timezone());
                            let local = |t: DateTime<Utc>| match tz {
                                Some(tz) => t.with_timezone(&tz).fixed_offset(),
                                None => t.fixed_offset(),
                            };
                            PlannedMachineView {
                                machine_id: m.machine_id,
                                install: wire(&m.install),
                                release_id: m.release_id,
                                reboot: m.reboot,
                                window_start: m.window_start,
                                window_end: m.window_end,
                                window_start_local: local(m.window_start),
                                window_end_local: local(m.window_end),
                                timezone: tz.map_or("UTC", |tz| tz.name()).to_owned(),
                            }
                        })
                        .collect()
                });
                batches.push(PlannedBatchView {
                    index: b.index,
                    wave: w.index,
                    region: b.region.clone(),
                    zone: b.zone.clone(),
                    planned_start: b.planned_start,
                    planned_end: b.planned_end,
                    machine_count: b.machines.len(),
                    machines,
                });
            }
            waves.push(PlannedWaveView {
                index: w.index,
                regions: w.regions.clone(),
                planned_start: w.planned_start,
                planned_end: w.planned_end,
                batches: w.batches.iter().map(|b| b.index).collect(),
            });
        }
        let mut by_reason = BTreeMap::new();
        for u in &plan.unplanned {
            *by_reason.entry(wire(&u.reason)).or_insert(0) += 1;
        }
        let planned = batches.iter().map(|b| b.machine_count).sum();
        PlanView {
            release_id: plan.release_id,
            start: plan.start,
            options: (&plan.options).into(),
            counts: PlanCounts {
                selected: p.selected,
                planned,
                unplanned: plan.unplanned.len(),
                unplanned_by_reason: by_reason,
                waves: waves.len(),
                batches: batches.len(),
            },
            waves,
            batches,
            expected_finish: plan.expected_finish,
            deadline: p.deadline,
            overdue: plan.expected_finish.is_some_and(|f| f > p.deadline),
            unplanned: with_machines.then(|| {
                plan.unplanned
                    .iter()
                    .map(|u| UnplannedView { machine_id: u.machine_id, reason: wire(&u.reason) })
                    .collect()
            }),
        }
    }
}
