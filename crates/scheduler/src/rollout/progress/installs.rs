//! Rules 6–7: machines whose window ended before they installed move to their next window, and
//! machines inside their window get their install job.

use std::collections::hash_map::{Entry, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::rollout::InstallState;

use super::board::Board;
use crate::windows::{next_windows, Schedule};
use hotpatch_domain::rollout::decisions::{Enqueue, Missed, MissedMove, Moved};
use hotpatch_domain::rollout::snapshot::Candidate;

/// The error of a machine that missed its window and has none left.
pub const NO_WINDOW_LEFT: &str = "no maintenance window left in the schedule to retry the install in";

/// The shortest `maximum_duration` an install job gets, in seconds.
pub const MIN_JOB_SECS: i64 = 60;

/// Rule 6: up to `limit` machines whose window ended (`window_end <= now`) before they
/// installed, soonest-ended window first: those `queued` with a job no agent claimed (whatever
/// their rollout's state), and those `pending` in an open batch of a running rollout (as this
/// tick left them). A machine that took its job's outcome in this tick is left to it.
pub fn missed_windows(
    board: &Board,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<Missed> {
    let mut missed: Vec<Missed> = candidates
        .iter()
        .filter(|c| c.window_end <= now && board.settled(c.rollout_id, c.machine_id).is_none())
        .filter_map(|c| {
            let cancel_job = match c.state {
                InstallState::Queued => Some(c.job_id?),
                InstallState::Pending if board.installs_in(c.rollout_id, c.batch_index) => None,
                _ => return None,
            };
            Some(Missed {
                rollout_id: c.rollout_id,
                batch_index: c.batch_index,
                machine_id: c.machine_id,
                cancel_job,
                window_end: c.window_end,
                attempts: c.attempts,
            })
        })
        .collect();
    missed.sort_unstable_by_key(|m| (m.window_end, m.rollout_id, m.machine_id));
    missed.truncate(limit);
    missed
}

/// How much of a window in progress must be left for a machine that missed its own to take it:
/// an hour, or half the window when that is shorter.
pub const IN_PROGRESS_LEFT: TimeDelta = TimeDelta::hours(1);

/// Where a machine that missed its window goes, in one step however far the clock moved: the
/// window in progress at `now` when enough of it is left ([`IN_PROGRESS_LEFT`]: the machine
/// installs at once rather than a day later), else its schedule's first window starting at or
/// after `now`; failed when the schedule has none within the window engine's horizon.
pub fn next_window_after_miss(schedule: &Schedule, now: DateTime<Utc>) -> MissedMove {
    // Windows never overlap, so at most the first is in progress.
    let window = next_windows(schedule, now, 2).into_iter().find(|w| {
        let needed = IN_PROGRESS_LEFT.min((w.end - w.start) / 2);
        w.start >= now || w.end - now >= needed
    });
    match window {
        Some(w) => MissedMove::Reschedule { start: w.start, end: w.end },
        None => MissedMove::Fail { reason: NO_WINDOW_LEFT },
    }
}

/// The transition of a machine that missed its window, given its schedule
/// ([`next_window_after_miss`]): pending in its next window with one more attempt, or failed.
pub fn moved(missed: &Missed, schedule: &Schedule, now: DateTime<Utc>) -> Moved {
    let to = next_window_after_miss(schedule, now);
    let attempts = match to {
        MissedMove::Reschedule { .. } => missed.attempts + 1,
        MissedMove::Fail { .. } => missed.attempts,
    };
    Moved {
        rollout_id: missed.rollout_id,
        machine_id: missed.machine_id,
        cancel_job: missed.cancel_job,
        to,
        attempts,
    }
}

/// Rule 7: up to `limit` machines to enqueue now, soonest-closing window first: `pending`
/// without a job, in an open batch of a running rollout (as this tick left them), inside their
/// window (`window_start <= now < window_end`), not busy with another disruptive job. A machine
/// due in two rollouts goes for the latest one (the greatest id) and once only.
pub fn due_installs(
    board: &Board,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<Enqueue> {
    let mut latest: HashMap<_, &Candidate> = HashMap::new();
    let due = candidates.iter().filter(|c| {
        c.state == InstallState::Pending
            && c.job_id.is_none()
            && c.window_start <= now
            && now < c.window_end
            && !c.busy
            && board.settled(c.rollout_id, c.machine_id).is_none()
            && board.installs_in(c.rollout_id, c.batch_index)
    });
    for c in due {
        match latest.entry(c.machine_id) {
            Entry::Vacant(slot) => {
                slot.insert(c);
            }
            Entry::Occupied(mut held) if held.get().rollout_id < c.rollout_id => {
                held.insert(c);
            }
            Entry::Occupied(_) => {}
        }
    }
    let mut due: Vec<&Candidate> = latest.into_values().collect();
    due.sort_unstable_by_key(|c| (c.window_end, c.rollout_id, c.machine_id));
    due.truncate(limit);
    due.into_iter()
        .map(|c| Enqueue {
            rollout_id: c.rollout_id,
            batch_index: c.batch_index,
            machine_id: c.machine_id,
            release_id: c.release_id,
            install: c.install,
            reboot: c.reboot,
            window_end: c.window_end,
            attempt: c.attempts,
            maximum_duration_secs: maximum_duration_secs(c.window_end, now),
        })
        .collect()
}

/// An install job's `maximum_duration`: the seconds left in the window at `now`, at least
/// [`MIN_JOB_SECS`] (the agent stops when the window closes; a job not done by then is retried
/// in the next one).
pub fn maximum_duration_secs(window_end: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    let left = (window_end - now).num_seconds().max(MIN_JOB_SECS);
    u32::try_from(left).unwrap_or(u32::MAX)
}
