//! Rules 1–2: machines take their ended job's outcome, then installed machines the health their
//! agent reported since.

use hotpatch_domain::job::{HealthStatus, JobState};
use hotpatch_domain::rollout::{BatchState, InstallState};

use super::board::Board;
use hotpatch_domain::rollout::decisions::{HealthChange, InstallResult};
use hotpatch_domain::rollout::snapshot::{EndedJob, HealthReport, Slot};

/// Rule 1: each machine whose job ended takes its outcome — `succeeded`; `failed` with the
/// job's error (or `job failed`); or, for a canceled job, `pending` again with the job's error
/// (or `job canceled`), keeping the job's id so that it is not enqueued again in this window.
/// The open batches' tallies follow.
pub fn sync_job_results(board: &mut Board, ended: &[EndedJob]) -> Vec<InstallResult> {
    let mut results = Vec::with_capacity(ended.len());
    for job in ended {
        let state = match job.state {
            JobState::Succeeded => InstallState::Succeeded,
            JobState::Failed => InstallState::Failed,
            // Rollout jobs do not expire (their window bounds them); one that did is like canceled.
            JobState::Canceled | JobState::Expired => InstallState::Pending,
            JobState::Queued | JobState::Leased => continue,
        };
        let error = (state != InstallState::Succeeded)
            .then(|| job.error.clone().unwrap_or_else(|| format!("job {}", <&str>::from(job.state))));
        if let Some(batch) = board.batch_mut(job.rollout_id, job.batch_index) {
            if batch.state == BatchState::Open {
                let to = match state {
                    InstallState::Succeeded => Slot::AwaitingHealth,
                    InstallState::Failed => Slot::Failed,
                    _ => Slot::Pending,
                };
                batch.machines.move_one(Slot::Queued, to);
            }
        }
        board.settle(job.rollout_id, job.machine_id, state);
        results.push(InstallResult {
            rollout_id: job.rollout_id,
            batch_index: job.batch_index,
            machine_id: job.machine_id,
            job_id: job.job_id,
            state,
            error,
        });
    }
    results
}

/// Rule 2: a machine that installed (before or in this tick), in an open or halted batch, takes
/// the health of its agent's latest report when that came after its job ended. It follows later
/// reports until its batch is decided: a machine that recovers counts as healthy again.
/// Returns the machines whose health changed; the open batches' tallies follow.
pub fn record_health(board: &mut Board, reports: &[HealthReport]) -> Vec<HealthChange> {
    let mut changes = Vec::new();
    for report in reports {
        let just_installed = board.settled(report.rollout_id, report.machine_id);
        if just_installed.unwrap_or(report.state) != InstallState::Succeeded {
            continue;
        }
        // Only a report after the install counts (none when the job's end is unknown).
        match report.job_finished_at {
            Some(ended) if report.reported_at > ended => {}
            _ => continue,
        }
        let Some(batch) = board.batch_mut(report.rollout_id, report.batch_index) else { continue };
        if !matches!(batch.state, BatchState::Open | BatchState::Halted) {
            continue;
        }
        // A machine that installed in this tick has no health yet, whatever was stored.
        let before = if just_installed.is_some() { None } else { report.healthy };
        let healthy = report.status == HealthStatus::Healthy;
        if before == Some(healthy) {
            continue;
        }
        if batch.state == BatchState::Open {
            batch.machines.move_one(slot(before), slot(Some(healthy)));
        }
        changes.push(HealthChange {
            rollout_id: report.rollout_id,
            batch_index: report.batch_index,
            machine_id: report.machine_id,
            healthy,
        });
    }
    changes
}

/// Where an installed machine counts, by its health.
fn slot(healthy: Option<bool>) -> Slot {
    match healthy {
        None => Slot::AwaitingHealth,
        Some(true) => Slot::Healthy,
        Some(false) => Slot::Unhealthy,
    }
}
