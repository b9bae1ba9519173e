//! Rule 5: which batches open — the regions of the current wave in parallel, each region's
//! batches one after the other.

use std::collections::BTreeSet;

use hotpatch_domain::rollout::{BatchState, RolloutState};

use super::board::Board;
use super::verdicts::unfinished;
use hotpatch_domain::rollout::decisions::BatchKey;

/// Rule 5: in each running rollout (as this tick left it: one halted or succeeded in this tick
/// opens nothing), the current wave is the lowest wave with a batch pending, open or halted; in
/// it, each region's first such batch (by index) opens if it is pending. A halted batch holds
/// its region, and, being unfinished, the next wave.
pub fn open_batches(board: &mut Board) -> Vec<BatchKey> {
    let mut opened = Vec::new();
    for rollout in board.rollouts_mut() {
        if rollout.state != RolloutState::Running {
            continue;
        }
        let Some(wave) = rollout.batches.iter().filter(|b| unfinished(b.state)).map(|b| b.wave).min() else {
            continue;
        };
        let mut regions = BTreeSet::new();
        let mut first_of_region = Vec::new();
        for (i, batch) in rollout.batches.iter().enumerate() {
            if batch.wave == wave && unfinished(batch.state) && regions.insert(batch.region.as_str()) {
                first_of_region.push(i);
            }
        }
        for i in first_of_region {
            let batch = &mut rollout.batches[i];
            if batch.state == BatchState::Pending {
                batch.state = BatchState::Open;
                opened.push(BatchKey { rollout_id: rollout.id, batch_index: batch.index });
            }
        }
    }
    opened
}
