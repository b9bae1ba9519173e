//! A model of the store around the rollout progression, for its property tests: the rows a
//! tick loads ([`Sim::snapshot`]), the decisions applied with the store's guards
//! ([`Sim::apply`]), and (in [`world`]) what agents, operators and the clock do between ticks.

pub mod checks;
pub mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{HealthStatus, JobState};
use hotpatch_domain::rollout::{BatchState, CycleKind, InstallState, RolloutState};
use hotpatch_scheduler::rollout::progress::{
    BatchRow, Candidate, Decisions, EndedJob, HealthReport, MissedMove, RolloutRow, Snapshot, Tally,
};
use hotpatch_scheduler::rollout::RolloutPlan;
use hotpatch_scheduler::windows::Schedule;
use uuid::Uuid;

/// A rollout's row with its batches and machines.
#[derive(Debug, Clone)]
pub struct SimRollout {
    pub id: Uuid,
    pub state: RolloutState,
    pub threshold: u32,
    pub batches: Vec<SimBatch>,
    pub machines: Vec<SimMachine>,
}

#[derive(Debug, Clone)]
pub struct SimBatch {
    pub index: i32,
    pub wave: i32,
    pub region: String,
    pub zone: Option<String>,
    pub state: BatchState,
}

#[derive(Debug, Clone)]
pub struct SimMachine {
    pub batch_index: i32,
    pub machine_id: Uuid,
    pub state: InstallState,
    pub job_id: Option<Uuid>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub attempts: i32,
    pub healthy: Option<bool>,
    pub release_id: Uuid,
    pub install: CycleKind,
}

/// A job of the queue (an install of a rollout, or another disruptive job: `rollout_id` none).
#[derive(Debug, Clone)]
pub struct SimJob {
    pub machine_id: Uuid,
    pub rollout_id: Option<Uuid>,
    pub state: JobState,
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The database, as far as rollouts go.
#[derive(Debug, Clone)]
pub struct Sim {
    pub now: DateTime<Utc>,
    pub rollouts: Vec<SimRollout>,
    pub jobs: BTreeMap<Uuid, SimJob>,
    /// Each agent's latest health report.
    pub reports: HashMap<Uuid, (HealthStatus, DateTime<Utc>)>,
    pub schedules: HashMap<Uuid, Schedule>,
    /// Geo-pairs, both ways, lower case.
    pub pairs: BTreeSet<(String, String)>,
    next_job: u128,
}

impl SimRollout {
    pub fn from_plan(id: Uuid, plan: &RolloutPlan) -> SimRollout {
        let (mut batches, mut machines) = (Vec::new(), Vec::new());
        for wave in &plan.waves {
            for b in &wave.batches {
                let index = i32::try_from(b.index).unwrap();
                batches.push(SimBatch {
                    index,
                    wave: i32::try_from(wave.index).unwrap(),
                    region: b.region.clone(),
                    zone: b.zone.clone(),
                    state: BatchState::Pending,
                });
                machines.extend(b.machines.iter().map(|m| SimMachine {
                    batch_index: index,
                    machine_id: m.machine_id,
                    state: InstallState::Pending,
                    job_id: None,
                    window_start: m.window_start,
                    window_end: m.window_end,
                    attempts: 1,
                    healthy: None,
                    release_id: m.release_id,
                    install: m.install,
                }));
            }
        }
        let threshold = plan.options.failure_threshold_percent;
        SimRollout { id, state: RolloutState::Running, threshold, batches, machines }
    }

    pub fn batch(&self, index: i32) -> &SimBatch {
        self.batches.iter().find(|b| b.index == index).unwrap()
    }

    fn batch_mut(&mut self, index: i32) -> &mut SimBatch {
        self.batches.iter_mut().find(|b| b.index == index).unwrap()
    }

    fn machine_mut(&mut self, machine_id: Uuid) -> Option<&mut SimMachine> {
        self.machines.iter_mut().find(|m| m.machine_id == machine_id)
    }

    pub fn is_live(&self) -> bool {
        matches!(self.state, RolloutState::Running | RolloutState::Paused | RolloutState::Halted)
    }
}

impl Sim {
    pub fn new(
        now: DateTime<Utc>,
        rollouts: Vec<SimRollout>,
        schedules: HashMap<Uuid, Schedule>,
        pairs: BTreeSet<(String, String)>,
    ) -> Sim {
        Sim { now, rollouts, jobs: BTreeMap::new(), reports: HashMap::new(), schedules, pairs, next_job: 1 }
    }

    pub fn rollout(&self, id: Uuid) -> Option<&SimRollout> {
        self.rollouts.iter().find(|r| r.id == id)
    }

    fn rollout_mut(&mut self, id: Uuid) -> Option<&mut SimRollout> {
        self.rollouts.iter_mut().find(|r| r.id == id)
    }

    /// The machines' active (queued or leased) jobs.
    pub fn active_jobs(&self) -> HashMap<Uuid, Vec<Uuid>> {
        let mut active: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (id, j) in &self.jobs {
            if !j.state.is_final() {
                active.entry(j.machine_id).or_default().push(*id);
            }
        }
        active
    }

    pub fn new_job(&mut self, machine_id: Uuid, rollout_id: Option<Uuid>) -> Uuid {
        let id = Uuid::from_u128(0xF000_0000 + self.next_job);
        self.next_job += 1;
        let job = SimJob { machine_id, rollout_id, state: JobState::Queued, error: None, finished_at: None };
        self.jobs.insert(id, job);
        id
    }

    /// The rows a tick loads, as the store would read them.
    pub fn snapshot(&self) -> Snapshot {
        let active = self.active_jobs();
        let mut s = Snapshot::default();
        for r in &self.rollouts {
            for m in &r.machines {
                let job = m.job_id.and_then(|j| self.jobs.get(&j));
                if m.state == InstallState::Queued && job.is_some_and(|j| j.state.is_final()) {
                    let job = job.unwrap();
                    s.ended_jobs.push(EndedJob {
                        rollout_id: r.id,
                        batch_index: m.batch_index,
                        machine_id: m.machine_id,
                        job_id: m.job_id.unwrap(),
                        state: job.state,
                        error: job.error.clone(),
                    });
                }
                if !r.is_live() {
                    continue;
                }
                let job_state = job.map(|j| j.state);
                let installed = m.state == InstallState::Succeeded
                    || m.state == InstallState::Queued && job_state == Some(JobState::Succeeded);
                let batch_state = r.batch(m.batch_index).state;
                let report = self.reports.get(&m.machine_id);
                if let (true, Some(&(status, reported_at))) = (installed, report) {
                    if matches!(batch_state, BatchState::Open | BatchState::Halted) {
                        s.health.push(HealthReport {
                            rollout_id: r.id,
                            batch_index: m.batch_index,
                            machine_id: m.machine_id,
                            state: m.state,
                            healthy: m.healthy,
                            job_finished_at: job.and_then(|j| j.finished_at),
                            status,
                            reported_at,
                        });
                    }
                }
                let waiting = m.state == InstallState::Queued && job_state == Some(JobState::Queued);
                if m.state == InstallState::Pending || waiting {
                    let others = active.get(&m.machine_id).map_or(&[][..], Vec::as_slice);
                    s.candidates.push(Candidate {
                        rollout_id: r.id,
                        batch_index: m.batch_index,
                        machine_id: m.machine_id,
                        state: m.state,
                        job_id: m.job_id,
                        window_start: m.window_start,
                        window_end: m.window_end,
                        attempts: m.attempts,
                        busy: others.iter().any(|j| Some(*j) != m.job_id),
                        release_id: m.release_id,
                        install: m.install,
                        reboot: m.install.requires_reboot(),
                    });
                }
            }
            if r.is_live() {
                s.rollouts.push(rollout_row(r));
            }
        }
        s
    }

    /// Applies a tick's decisions in the module's order, with the store's guards. Checks each
    /// missed-window move (a window at or after `now`, one more attempt).
    pub fn apply(&mut self, d: &Decisions) -> Result<(), String> {
        let now = self.now;
        for res in &d.results {
            let r = self.rollout_mut(res.rollout_id).unwrap();
            let m = r.machine_mut(res.machine_id).unwrap();
            if m.state == InstallState::Queued && m.job_id == Some(res.job_id) {
                m.state = res.state;
            }
        }
        for h in &d.health {
            let r = self.rollout_mut(h.rollout_id).unwrap();
            r.machine_mut(h.machine_id).unwrap().healthy = Some(h.healthy);
        }
        for k in &d.verdicts.batches_succeeded {
            let b = self.rollout_mut(k.rollout_id).unwrap().batch_mut(k.batch_index);
            assert_eq!(b.state, BatchState::Open);
            b.state = BatchState::Succeeded;
        }
        for halt in &d.verdicts.halts {
            let r = self.rollout_mut(halt.rollout_id).unwrap();
            r.state = RolloutState::Halted;
            for b in &halt.batches {
                r.batch_mut(b.batch_index).state = BatchState::Halted;
            }
        }
        for id in &d.verdicts.rollouts_succeeded {
            self.rollout_mut(*id).unwrap().state = RolloutState::Succeeded;
        }
        for k in &d.opened {
            let b = self.rollout_mut(k.rollout_id).unwrap().batch_mut(k.batch_index);
            assert_eq!(b.state, BatchState::Pending);
            b.state = BatchState::Open;
        }
        for missed in &d.missed {
            if let Some(job) = missed.cancel_job {
                let j = self.jobs.get_mut(&job).unwrap();
                if j.state != JobState::Queued {
                    continue; // claimed meanwhile
                }
                (j.state, j.finished_at) = (JobState::Canceled, Some(now));
            }
            let moved = hotpatch_scheduler::rollout::progress::moved(
                missed,
                &self.schedules[&missed.machine_id],
                now,
            );
            let m = self.rollout_mut(missed.rollout_id).unwrap().machine_mut(missed.machine_id).unwrap();
            match moved.to {
                MissedMove::Reschedule { start, end } => {
                    if end <= now || end <= start || moved.attempts != m.attempts + 1 {
                        return Err(format!(
                            "machine {} missed at {now} moved to {start}..{end}",
                            m.machine_id
                        ));
                    }
                    (m.state, m.job_id, m.window_start, m.window_end) =
                        (InstallState::Pending, None, start, end);
                    m.attempts = moved.attempts;
                }
                MissedMove::Fail { .. } => m.state = InstallState::Failed,
            }
        }
        for e in &d.enqueue {
            if self.active_jobs().contains_key(&e.machine_id) {
                continue; // the one-active-disruptive-job index
            }
            let job = self.new_job(e.machine_id, Some(e.rollout_id));
            let m = self.rollout_mut(e.rollout_id).unwrap().machine_mut(e.machine_id).unwrap();
            assert!(m.state == InstallState::Pending && m.job_id.is_none());
            (m.state, m.job_id) = (InstallState::Queued, Some(job));
        }
        Ok(())
    }
}

/// A rollout's row with its batches, open ones counted.
fn rollout_row(r: &SimRollout) -> RolloutRow {
    let batches = r
        .batches
        .iter()
        .map(|b| {
            let mut machines = Tally::default();
            if b.state == BatchState::Open {
                for m in r.machines.iter().filter(|m| m.batch_index == b.index) {
                    let slot = match (m.state, m.healthy) {
                        (InstallState::Pending, _) => &mut machines.pending,
                        (InstallState::Queued, _) => &mut machines.queued,
                        (InstallState::Succeeded, None) => &mut machines.awaiting_health,
                        (InstallState::Succeeded, Some(true)) => &mut machines.healthy,
                        (InstallState::Succeeded, Some(false)) => &mut machines.unhealthy,
                        (InstallState::Failed, _) => &mut machines.failed,
                        (InstallState::Canceled, _) => continue,
                    };
                    *slot += 1;
                }
            }
            BatchRow {
                index: b.index,
                wave: b.wave,
                region: b.region.clone(),
                zone: b.zone.clone(),
                state: b.state,
                machines,
            }
        })
        .collect();
    RolloutRow { id: r.id, state: r.state, failure_threshold_percent: r.threshold, batches }
}
