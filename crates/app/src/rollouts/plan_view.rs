//! A rollout plan as `POST /v1/rollouts/preview` shows it: waves, batches, each machine's window
//! on its own clock, the machines left out and the counts.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use hotpatch_scheduler::rollout::{PlannedMachine, RolloutPlan};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::options::OptionsView;
use super::plan::Planned;

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
    /// When overdue, in words: by how much, and how many machines (in which waves) install
    /// after the deadline.
    pub overdue_reason: Option<String>,
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

impl PlannedMachineView {
    /// A machine of the plan, its window also on the clock of the schedule it follows.
    fn new(p: &Planned, m: &PlannedMachine) -> PlannedMachineView {
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
                let machines =
                    with_machines.then(|| b.machines.iter().map(|m| PlannedMachineView::new(p, m)).collect());
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
            overdue_reason: overdue_reason(plan, p.deadline),
            unplanned: with_machines.then(|| {
                plan.unplanned
                    .iter()
                    .map(|u| UnplannedView { machine_id: u.machine_id, reason: wire(&u.reason) })
                    .collect()
            }),
        }
    }
}

/// Why a plan is overdue, in words an operator can act on; `None` when it finishes in time.
pub fn overdue_reason(plan: &RolloutPlan, deadline: DateTime<Utc>) -> Option<String> {
    let finish = plan.expected_finish.filter(|f| *f > deadline)?;
    let mut late = 0;
    let mut waves = Vec::new();
    for wave in &plan.waves {
        let count = wave.batches.iter().flat_map(|b| &b.machines).filter(|m| m.window_end > deadline).count();
        if count > 0 {
            late += count;
            waves.push(wave.index.to_string());
        }
    }
    let over = finish - deadline;
    let by = if over.num_days() >= 1 {
        format!("{} days", over.num_days())
    } else {
        format!("{} hours", over.num_hours().max(1))
    };
    Some(format!(
        "the plan finishes at {finish} ({by} after the 30-day deadline, {deadline}): {late} machines \
         (wave{s} {waves}) install after it; a higher max_batch_percent or more frequent maintenance \
         windows bring it in",
        finish = finish.format("%Y-%m-%d %H:%M UTC"),
        deadline = deadline.format("%Y-%m-%d %H:%M UTC"),
        s = if waves.len() == 1 { "" } else { "s" },
        waves = waves.join(", "),
    ))
}
