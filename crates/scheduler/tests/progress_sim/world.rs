//! What happens between two ticks: agents claim and finish jobs and report health, someone
//! cancels a job or starts an "install now", operators pause, resume or cancel rollouts, and the
//! clock moves (sometimes by months).

use std::collections::HashMap;

use chrono::Duration;
use hotpatch_domain::job::{HealthStatus, JobState};
use hotpatch_domain::rollout::{BatchState, InstallState, RolloutState};
use uuid::Uuid;

use super::Sim;

/// xorshift64*, seeded by the property's input.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True `pct` times in a hundred.
    pub fn chance(&mut self, pct: u32) -> bool {
        self.next() % 100 < u64::from(pct)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How the world behaves, in percent per job, machine or step.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// A queued job is claimed by its agent.
    pub claim: u32,
    /// A leased job ends.
    pub finish: u32,
    /// An ended install fails.
    pub fail: u32,
    /// A health report says unhealthy.
    pub unhealthy: u32,
    /// An installed machine reports again (recovering, or falling ill).
    pub report_again: u32,
    /// Someone cancels a queued job.
    pub cancel_job: u32,
    /// Someone starts an "install now" on a machine (per step).
    pub install_now: u32,
    /// An operator pauses, resumes or cancels a rollout (per step).
    pub operator: u32,
    /// The clock jumps by days or months instead of minutes (per step).
    pub jump: u32,
    /// The longest ordinary step of the clock, in minutes.
    pub max_step_mins: u64,
}

impl Behaviour {
    /// Agents that always claim, finish and report, and nobody else acting: every rollout must
    /// end (the clock never steps over a window: they last two hours or more).
    pub fn diligent(fail: u32, unhealthy: u32) -> Behaviour {
        Behaviour {
            claim: 100,
            finish: 100,
            fail,
            unhealthy,
            report_again: 0,
            cancel_job: 0,
            install_now: 0,
            operator: 0,
            jump: 0,
            max_step_mins: 110,
        }
    }
}

/// One stretch of time between two ticks.
pub fn step(sim: &mut Sim, rng: &mut Rng, b: &Behaviour) {
    agents(sim, rng, b);
    reports(sim, rng, b);
    if rng.chance(b.install_now) {
        let machines: Vec<Uuid> = sim.schedules.keys().copied().collect();
        let mut machines = machines;
        machines.sort();
        let m = machines[rng.below(machines.len() as u64) as usize];
        if !sim.active_jobs().contains_key(&m) {
            sim.new_job(m, None);
        }
    }
    if rng.chance(b.operator) && !sim.rollouts.is_empty() {
        let i = rng.below(sim.rollouts.len() as u64) as usize;
        operate(sim, i, rng.below(3));
    }
    let step = if rng.chance(b.jump) {
        Duration::days(1 + rng.below(400) as i64)
    } else {
        Duration::minutes(1 + rng.below(b.max_step_mins) as i64)
    };
    sim.now += step;
}

fn agents(sim: &mut Sim, rng: &mut Rng, b: &Behaviour) {
    let now = sim.now;
    for job in sim.jobs.values_mut() {
        match job.state {
            JobState::Queued if rng.chance(b.cancel_job) => {
                job.state = JobState::Canceled;
                job.error = Some("canceled by an operator".into());
                job.finished_at = Some(now);
            }
            JobState::Queued if rng.chance(b.claim) => job.state = JobState::Leased,
            JobState::Leased if rng.chance(b.finish) => {
                let failed = rng.chance(b.fail);
                job.state = if failed { JobState::Failed } else { JobState::Succeeded };
                job.error = failed.then(|| "KB5000001 failed with 0x80070005".into());
                job.finished_at = Some(now);
            }
            _ => {}
        }
    }
}

/// Agents report after an install ended (strictly later), and now and then again.
fn reports(sim: &mut Sim, rng: &mut Rng, b: &Behaviour) {
    let mut installed: HashMap<Uuid, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for job in sim.jobs.values().filter(|j| j.state == JobState::Succeeded && j.rollout_id.is_some()) {
        let at = job.finished_at.unwrap();
        let e = installed.entry(job.machine_id).or_insert(at);
        *e = (*e).max(at);
    }
    let mut machines: Vec<_> = installed.into_iter().collect();
    machines.sort();
    for (machine, finished) in machines {
        let stale = sim.reports.get(&machine).is_none_or(|&(_, at)| at <= finished);
        if finished < sim.now && (stale || rng.chance(b.report_again)) {
            let unhealthy = rng.chance(b.unhealthy);
            let status = if unhealthy { HealthStatus::Unhealthy } else { HealthStatus::Healthy };
            sim.reports.insert(machine, (status, sim.now));
        }
    }
}

/// An operator's pause (0), resume (1) or cancel (2), as the store's control does them.
fn operate(sim: &mut Sim, i: usize, action: u64) {
    let now = sim.now;
    let r = &mut sim.rollouts[i];
    match (action, r.state) {
        (0, RolloutState::Running) => r.state = RolloutState::Paused,
        (1, RolloutState::Paused) => r.state = RolloutState::Running,
        (1, RolloutState::Halted) => {
            r.state = RolloutState::Running;
            for b in r.batches.iter_mut().filter(|b| b.state == BatchState::Halted) {
                b.state = BatchState::Open;
                for m in r.machines.iter_mut().filter(|m| m.batch_index == b.index) {
                    if m.state == InstallState::Failed {
                        m.state = InstallState::Pending;
                    }
                }
            }
        }
        (2, RolloutState::Running | RolloutState::Paused | RolloutState::Halted) => {
            r.state = RolloutState::Canceled;
            let id = r.id;
            for job in sim.jobs.values_mut() {
                if job.rollout_id == Some(id) && job.state == JobState::Queued {
                    (job.state, job.finished_at) = (JobState::Canceled, Some(now));
                    job.error = Some("rollout canceled".into());
                }
            }
            let r = &mut sim.rollouts[i];
            for m in &mut r.machines {
                let job_canceled = m.job_id.is_some_and(|j| sim.jobs[&j].state == JobState::Canceled);
                if m.state == InstallState::Pending || m.state == InstallState::Queued && job_canceled {
                    m.state = InstallState::Canceled;
                }
            }
            for b in &mut r.batches {
                if matches!(b.state, BatchState::Pending | BatchState::Open | BatchState::Halted) {
                    b.state = BatchState::Canceled;
                }
            }
        }
        _ => {}
    }
}
