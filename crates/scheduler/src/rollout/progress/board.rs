//! The rollouts as a tick has decided them so far: the snapshot's rows with each phase's
//! decisions written onto them, so that every phase reads the states of this tick.

use std::collections::HashMap;

use hotpatch_domain::rollout::{BatchState, InstallState, RolloutState};
use uuid::Uuid;

use hotpatch_domain::rollout::snapshot::{BatchRow, RolloutRow};

/// The rollouts of a tick, by id, their batches by index, and the machines whose job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    rollouts: Vec<RolloutRow>,
    /// Machines (by rollout and machine) that took their job's outcome in this tick.
    settled: HashMap<(Uuid, Uuid), InstallState>,
}

impl Board {
    /// The board before any decision: the snapshot's rollouts, sorted.
    pub fn new(rollouts: &[RolloutRow]) -> Board {
        let mut rollouts = rollouts.to_vec();
        rollouts.sort_by_key(|r| r.id);
        for r in &mut rollouts {
            r.batches.sort_by_key(|b| b.index);
        }
        Board { rollouts, settled: HashMap::new() }
    }

    /// The rollouts, by id, with the states decided so far.
    pub fn rollouts(&self) -> &[RolloutRow] {
        &self.rollouts
    }

    pub(super) fn rollouts_mut(&mut self) -> &mut [RolloutRow] {
        &mut self.rollouts
    }

    /// A rollout of the board.
    pub fn rollout(&self, id: Uuid) -> Option<&RolloutRow> {
        self.rollouts.binary_search_by_key(&id, |r| r.id).ok().map(|i| &self.rollouts[i])
    }

    /// A batch of the board.
    pub fn batch(&self, rollout_id: Uuid, index: i32) -> Option<&BatchRow> {
        let batches = &self.rollout(rollout_id)?.batches;
        batches.binary_search_by_key(&index, |b| b.index).ok().map(|i| &batches[i])
    }

    pub(super) fn batch_mut(&mut self, rollout_id: Uuid, index: i32) -> Option<&mut BatchRow> {
        let r = self.rollouts.binary_search_by_key(&rollout_id, |r| r.id).ok()?;
        let batches = &mut self.rollouts[r].batches;
        let b = batches.binary_search_by_key(&index, |b| b.index).ok()?;
        Some(&mut batches[b])
    }

    /// Whether the machines of a batch may install (and miss their windows): the batch is open
    /// and its rollout running.
    pub fn installs_in(&self, rollout_id: Uuid, index: i32) -> bool {
        self.rollout(rollout_id).is_some_and(|r| r.state == RolloutState::Running)
            && self.batch(rollout_id, index).is_some_and(|b| b.state == BatchState::Open)
    }

    /// The state a machine took from its ended job in this tick, if it did.
    pub fn settled(&self, rollout_id: Uuid, machine_id: Uuid) -> Option<InstallState> {
        self.settled.get(&(rollout_id, machine_id)).copied()
    }

    pub(super) fn settle(&mut self, rollout_id: Uuid, machine_id: Uuid, state: InstallState) {
        self.settled.insert((rollout_id, machine_id), state);
    }
}
