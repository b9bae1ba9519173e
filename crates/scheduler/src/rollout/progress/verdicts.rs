//! Rules 3–4: open batches of running rollouts succeed or halt their rollout; running rollouts
//! with nothing left succeed.

use hotpatch_domain::rollout::{BatchState, RolloutState};

use super::board::Board;
use hotpatch_domain::rollout::decisions::{BatchKey, Halt, HaltedBatch, Verdicts};
use hotpatch_domain::rollout::snapshot::BatchRow;

/// What an open batch's machines say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Failed and unhealthy machines are over the threshold: the batch halts its rollout.
    Halt {
        /// Why, with the counts.
        reason: String,
    },
    /// No machine waits and the failures are at or under the threshold: done.
    Succeed,
    /// Machines still wait.
    Wait,
}

/// Rule 3 for one open batch: it halts when `bad × 100 > threshold × total` (bad: failed, or
/// installed and unhealthy), whether or not machines still wait; otherwise it succeeds once no
/// machine waits (pending, queued, or installed without health yet), its failed and unhealthy
/// machines staying as they are.
pub fn batch_verdict(batch: &BatchRow, failure_threshold_percent: u32) -> BatchVerdict {
    let (bad, total) = (batch.machines.bad(), batch.machines.total());
    let threshold = u64::from(failure_threshold_percent);
    if bad * 100 > threshold * total {
        let zone = batch.zone.as_deref().map(|z| format!(", zone {z}")).unwrap_or_default();
        let (index, region) = (batch.index, &batch.region);
        let reason = format!(
            "{bad} of {total} machines failed or are unhealthy in batch {index} (region {region}{zone}): \
             over the {threshold}% threshold"
        );
        BatchVerdict::Halt { reason }
    } else if batch.machines.waiting() == 0 {
        BatchVerdict::Succeed
    } else {
        BatchVerdict::Wait
    }
}

/// Rules 3–4: judges the open batches of running rollouts ([`batch_verdict`]). A rollout with
/// a batch over the threshold halts, with those batches; its reason is theirs joined with
/// `"; "`. Batches that succeed do so even when another batch halts their rollout. A rollout
/// still running with no batch pending, open or halted succeeds.
pub fn judge_batches(board: &mut Board) -> Verdicts {
    let mut verdicts = Verdicts::default();
    for rollout in board.rollouts_mut() {
        if rollout.state != RolloutState::Running {
            continue;
        }
        let threshold = rollout.failure_threshold_percent;
        let mut halted = Vec::new();
        for batch in rollout.batches.iter_mut().filter(|b| b.state == BatchState::Open) {
            match batch_verdict(batch, threshold) {
                BatchVerdict::Halt { reason } => {
                    batch.state = BatchState::Halted;
                    halted.push(HaltedBatch { batch_index: batch.index, reason });
                }
                BatchVerdict::Succeed => {
                    batch.state = BatchState::Succeeded;
                    let key = BatchKey { rollout_id: rollout.id, batch_index: batch.index };
                    verdicts.batches_succeeded.push(key);
                }
                BatchVerdict::Wait => {}
            }
        }
        if !halted.is_empty() {
            rollout.state = RolloutState::Halted;
            let reason = halted.iter().map(|b| b.reason.as_str()).collect::<Vec<_>>().join("; ");
            verdicts.halts.push(Halt { rollout_id: rollout.id, batches: halted, reason });
        } else if rollout.batches.iter().all(|b| !unfinished(b.state)) {
            rollout.state = RolloutState::Succeeded;
            verdicts.rollouts_succeeded.push(rollout.id);
        }
    }
    verdicts
}

/// A batch that keeps its rollout going: pending, open or halted.
pub(super) fn unfinished(state: BatchState) -> bool {
    matches!(state, BatchState::Pending | BatchState::Open | BatchState::Halted)
}
