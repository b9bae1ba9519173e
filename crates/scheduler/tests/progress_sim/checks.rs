//! The invariants the properties hold the progression to: on a tick's decisions (against the
//! rows it read), and on the rows after they are applied.

use std::collections::{BTreeMap, BTreeSet};

use hotpatch_domain::rollout::{BatchState, InstallState, RolloutState};
use hotpatch_scheduler::rollout::progress::Decisions;
use uuid::Uuid;

use super::Sim;

fn unfinished(state: BatchState) -> bool {
    matches!(state, BatchState::Pending | BatchState::Open | BatchState::Halted)
}

/// A tick's decisions, against the rows before they are applied: only running rollouts (not
/// halted by this tick) open or enqueue; each machine is enqueued once, inside its window, when
/// no other disruptive job holds it; the limit holds.
pub fn decisions(sim: &Sim, d: &Decisions, limit: usize) -> Result<(), String> {
    let now = sim.now;
    if d.enqueue.len() > limit || d.missed.len() > limit {
        return Err(format!(
            "{} enqueued and {} moved with a limit of {limit}",
            d.enqueue.len(),
            d.missed.len()
        ));
    }
    let halted: BTreeSet<Uuid> = d.verdicts.halts.iter().map(|h| h.rollout_id).collect();
    let runs =
        |id: Uuid| sim.rollout(id).is_some_and(|r| r.state == RolloutState::Running) && !halted.contains(&id);
    for k in &d.opened {
        if !runs(k.rollout_id) {
            let state = sim.rollout(k.rollout_id).map(|r| r.state);
            return Err(format!("batch {} of a {state:?} rollout opened", k.batch_index));
        }
    }
    let active = sim.active_jobs();
    let mut machines = BTreeSet::new();
    for e in &d.enqueue {
        if !runs(e.rollout_id) {
            return Err(format!("machine {} enqueued for a rollout not running", e.machine_id));
        }
        if !machines.insert(e.machine_id) {
            return Err(format!("machine {} enqueued twice in one tick", e.machine_id));
        }
        if active.contains_key(&e.machine_id) {
            return Err(format!("machine {} enqueued while another job holds it", e.machine_id));
        }
        let r = sim.rollout(e.rollout_id).unwrap();
        let m = r.machines.iter().find(|m| m.machine_id == e.machine_id).unwrap();
        if !(m.window_start <= now && now < m.window_end) {
            return Err(format!(
                "machine {} enqueued at {now} outside {}..{}",
                e.machine_id, m.window_start, m.window_end
            ));
        }
        if m.state != InstallState::Pending || m.job_id.is_some() {
            return Err(format!(
                "machine {} enqueued from {:?} with job {:?}",
                e.machine_id, m.state, m.job_id
            ));
        }
    }
    Ok(())
}

/// After a tick's decisions are applied: every enqueued machine's batch is open in a running
/// rollout.
pub fn enqueued_in_open_batches(sim: &Sim, d: &Decisions) -> Result<(), String> {
    for e in &d.enqueue {
        let r = sim.rollout(e.rollout_id).unwrap();
        if r.state != RolloutState::Running || r.batch(e.batch_index).state != BatchState::Open {
            return Err(format!("machine {} enqueued in batch {} not open", e.machine_id, e.batch_index));
        }
    }
    Ok(())
}

/// The rows at any time: within a rollout, open batches are all of the lowest unfinished wave,
/// a region has at most one batch open or halted, geo-paired regions are never open together;
/// a machine has at most one active disruptive job.
pub fn rows(sim: &Sim) -> Result<(), String> {
    for r in &sim.rollouts {
        let current = r.batches.iter().filter(|b| unfinished(b.state)).map(|b| b.wave).min();
        let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
        let open: Vec<_> = r.batches.iter().filter(|b| b.state == BatchState::Open).collect();
        for b in r.batches.iter().filter(|b| matches!(b.state, BatchState::Open | BatchState::Halted)) {
            if Some(b.wave) != current {
                return Err(format!(
                    "batch {} of wave {} is {} with wave {current:?} unfinished",
                    b.index, b.wave, b.state
                ));
            }
            let n = per_region.entry(&b.region).or_default();
            *n += 1;
            if *n > 1 {
                return Err(format!("region {} has two batches open or halted", b.region));
            }
        }
        for a in &open {
            for b in &open {
                if sim.pairs.contains(&(a.region.clone(), b.region.clone())) {
                    return Err(format!("geo-paired {} and {} are open together", a.region, b.region));
                }
            }
        }
        if !r.is_live() && r.batches.iter().any(|b| b.state == BatchState::Open) {
            return Err(format!("a {} rollout has an open batch", r.state));
        }
    }
    for (machine, jobs) in sim.active_jobs() {
        if jobs.len() > 1 {
            return Err(format!("machine {machine} has {} active disruptive jobs", jobs.len()));
        }
    }
    Ok(())
}
