//! Rollout progression (`rollout::progress`): the dispatcher's rules one test each, named as
//! sentences, over snapshots written by hand (boundaries as small tables inside the tests).
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use hotpatch_domain::job::{HealthStatus, JobState};
use hotpatch_domain::rollout::{BatchState, CycleKind, InstallState, RolloutState};
use hotpatch_scheduler::rollout::progress::{
    self, batch_verdict, maximum_duration_secs, next_window_after_miss, tick, BatchKey, BatchRow,
    BatchVerdict, Candidate, Decisions, EndedJob, Halt, HaltedBatch, HealthChange, HealthReport,
    InstallResult, Missed, MissedMove, RolloutRow, Snapshot, Tally, NO_WINDOW_LEFT,
};
use hotpatch_scheduler::windows::{Blackout, Frequency, RecurrenceSpec, Schedule, ScheduleSpec, Tz};
use uuid::Uuid;

const LIMIT: usize = 1000;
const RELEASE: Uuid = Uuid::from_u128(0xC);

/// 2025-03-03 00:00 UTC plus `h` hours.
fn at(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 0, 0, 0).unwrap() + Duration::hours(h)
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

/// Rollout `n` (a greater `n` is a later rollout, as uuid v7 ids are).
fn rollout_id(n: u128) -> Uuid {
    Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn machine(n: u128) -> Uuid {
    Uuid::from_u128(0x1000 + n)
}

fn job(n: u128) -> Uuid {
    Uuid::from_u128(0x2000 + n)
}

fn batch(index: i32, wave: i32, region: &str, state: BatchState) -> BatchRow {
    BatchRow { index, wave, region: region.into(), zone: None, state, machines: Tally::default() }
}

fn open_batch(index: i32, wave: i32, region: &str, machines: Tally) -> BatchRow {
    BatchRow { machines, ..batch(index, wave, region, BatchState::Open) }
}

/// Rollout `n` in `state` with a 10% threshold.
fn rollout(n: u128, state: RolloutState, batches: Vec<BatchRow>) -> RolloutRow {
    RolloutRow { id: rollout_id(n), state, failure_threshold_percent: 10, batches }
}

fn snapshot(rollouts: Vec<RolloutRow>) -> Snapshot {
    Snapshot { rollouts, ..Snapshot::default() }
}

/// Machine `m` pending in batch `b` of rollout `r`, window `at(1)..at(5)`, first attempt.
fn candidate(r: u128, b: i32, m: u128) -> Candidate {
    Candidate {
        rollout_id: rollout_id(r),
        batch_index: b,
        machine_id: machine(m),
        state: InstallState::Pending,
        job_id: None,
        window_start: at(1),
        window_end: at(5),
        attempts: 1,
        busy: false,
        release_id: RELEASE,
        install: CycleKind::Hotpatch,
        reboot: false,
    }
}

fn ended(r: u128, b: i32, m: u128, state: JobState, error: Option<&str>) -> EndedJob {
    EndedJob {
        rollout_id: rollout_id(r),
        batch_index: b,
        machine_id: machine(m),
        job_id: job(m),
        state,
        error: error.map(Into::into),
    }
}

/// Machine `m`'s report of `status` at `reported_at`, its job having ended at `at(2)`.
fn report(
    r: u128,
    b: i32,
    m: u128,
    healthy: Option<bool>,
    status: HealthStatus,
    reported_at: DateTime<Utc>,
) -> HealthReport {
    HealthReport {
        rollout_id: rollout_id(r),
        batch_index: b,
        machine_id: machine(m),
        state: InstallState::Succeeded,
        healthy,
        job_finished_at: Some(at(2)),
        status,
        reported_at,
    }
}

fn key(r: u128, b: i32) -> BatchKey {
    BatchKey { rollout_id: rollout_id(r), batch_index: b }
}

fn enqueued(d: &Decisions) -> Vec<(Uuid, Uuid)> {
    d.enqueue.iter().map(|e| (e.rollout_id, e.machine_id)).collect()
}

fn one_open_rollout(machines: Tally) -> Snapshot {
    snapshot(vec![rollout(1, RolloutState::Running, vec![open_batch(1, 1, "eastus", machines)])])
}

/// Daily 01:00–05:00 UTC.
fn nightly() -> Schedule {
    Schedule::default_off_peak(Tz::UTC)
}

// Rule 1: job results.

#[test]
fn a_succeeded_job_makes_its_machine_succeeded_and_its_batch_wait_for_health() {
    let mut s = one_open_rollout(Tally { queued: 1, ..Tally::default() });
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Succeeded, None)];
    let d = tick(&s, at(3), LIMIT);
    let want = InstallResult {
        rollout_id: rollout_id(1),
        batch_index: 1,
        machine_id: machine(1),
        job_id: job(1),
        state: InstallState::Succeeded,
        error: None,
    };
    assert_eq!(d.results, [want]);
    assert!(d.verdicts.is_empty(), "installed is not enough: the batch waits for health");
}

#[test]
fn a_failed_job_fails_its_machine_with_the_jobs_error_or_job_failed() {
    for (error, want) in
        [(Some("KB5000001 failed with 0x80070005"), "KB5000001 failed with 0x80070005"), (None, "job failed")]
    {
        let mut s = one_open_rollout(Tally { queued: 1, pending: 19, ..Tally::default() });
        s.ended_jobs = vec![ended(1, 1, 1, JobState::Failed, error)];
        let d = tick(&s, at(3), LIMIT);
        assert_eq!((d.results[0].state, d.results[0].error.as_deref()), (InstallState::Failed, Some(want)));
        assert!(d.verdicts.is_empty(), "1 of 20 is under 10%");
    }
}

#[test]
fn a_canceled_job_returns_the_machine_to_pending_without_reenqueueing_it() {
    let mut s = one_open_rollout(Tally { queued: 1, ..Tally::default() });
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Canceled, None)];
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(
        (d.results[0].state, d.results[0].error.as_deref()),
        (InstallState::Pending, Some("job canceled"))
    );
    assert_eq!(d.results[0].job_id, job(1), "the machine keeps the job's id");
    assert!(d.verdicts.is_empty(), "pending again: the batch waits");

    // Loaded again as pending with the job's id, inside its window: not enqueued, until the
    // window ends and it moves.
    let mut s = one_open_rollout(Tally { pending: 1, ..Tally::default() });
    s.candidates = vec![Candidate { job_id: Some(job(1)), ..candidate(1, 1, 1) }];
    assert!(tick(&s, at(4), LIMIT).enqueue.is_empty());
    let d = tick(&s, at(5), LIMIT);
    assert_eq!(d.missed.len(), 1);
    assert_eq!(d.missed[0].cancel_job, None, "its job is over: nothing to cancel");
}

#[test]
fn a_job_that_has_not_ended_changes_nothing() {
    let mut s = one_open_rollout(Tally { queued: 1, ..Tally::default() });
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Leased, None), ended(1, 1, 2, JobState::Queued, None)];
    assert!(tick(&s, at(3), LIMIT).is_empty());
}

#[test]
fn a_job_left_running_by_a_canceled_rollout_still_records_its_result() {
    let s = Snapshot { ended_jobs: vec![ended(9, 1, 1, JobState::Succeeded, None)], ..Snapshot::default() };
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(d.results.len(), 1);
    assert!(d.verdicts.is_empty() && d.opened.is_empty());
}

// Rule 2: health.

#[test]
fn an_installed_machine_counts_only_a_health_report_newer_than_its_install() {
    let s = |reported_at| Snapshot {
        health: vec![report(1, 1, 1, None, HealthStatus::Healthy, reported_at)],
        ..one_open_rollout(Tally { awaiting_health: 1, ..Tally::default() })
    };
    for reported_at in [at(1), at(2)] {
        let d = tick(&s(reported_at), at(3), LIMIT);
        assert!(
            d.health.is_empty() && d.verdicts.is_empty(),
            "a report at {reported_at} is not after the install"
        );
    }
    let d = tick(&s(at(2) + Duration::seconds(1)), at(3), LIMIT);
    let change =
        HealthChange { rollout_id: rollout_id(1), batch_index: 1, machine_id: machine(1), healthy: true };
    assert_eq!(d.health, [change]);
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 1)]);
}

#[test]
fn a_job_and_a_health_report_arriving_together_let_the_batch_succeed_in_one_tick() {
    let mut s = one_open_rollout(Tally { queued: 1, ..Tally::default() });
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Succeeded, None)];
    s.health = vec![HealthReport {
        state: InstallState::Queued,
        ..report(1, 1, 1, None, HealthStatus::Healthy, at(3))
    }];
    let d = tick(&s, at(3) + mins(1), LIMIT);
    assert_eq!(d.health.len(), 1);
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 1)]);
    assert_eq!(d.verdicts.rollouts_succeeded, [rollout_id(1)]);

    // The same report for a job that failed is not health.
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Failed, None)];
    assert!(tick(&s, at(3) + mins(1), LIMIT).health.is_empty());
}

#[test]
fn a_machine_that_recovers_counts_as_healthy_again() {
    // 2 of 10 bad would halt; the unhealthy one recovers, so 1 of 10 failed: at the threshold.
    let mut s = one_open_rollout(Tally { healthy: 8, unhealthy: 1, failed: 1, ..Tally::default() });
    s.rollouts[0].state = RolloutState::Paused; // as if just resumed from a halt: not judged yet
    s.health = vec![report(1, 1, 1, Some(false), HealthStatus::Healthy, at(4))];
    let d = tick(&s, at(4) + mins(1), LIMIT);
    assert_eq!(d.health.iter().map(|h| h.healthy).collect::<Vec<_>>(), [true]);
    s.rollouts[0].state = RolloutState::Running;
    let d = tick(&s, at(4) + mins(1), LIMIT);
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 1)], "{d:?}");
}

#[test]
fn health_is_followed_in_open_and_halted_batches_only_and_only_when_it_changes() {
    let cases = [
        (BatchState::Open, None, HealthStatus::Unhealthy, Some(false)),
        (BatchState::Halted, Some(false), HealthStatus::Healthy, Some(true)),
        (BatchState::Open, Some(true), HealthStatus::Healthy, None),
        (BatchState::Succeeded, None, HealthStatus::Unhealthy, None),
        (BatchState::Pending, None, HealthStatus::Healthy, None),
    ];
    for (state, before, status, want) in cases {
        let mut s = snapshot(vec![rollout(1, RolloutState::Halted, vec![batch(1, 1, "eastus", state)])]);
        s.health = vec![report(1, 1, 1, before, status, at(3))];
        let d = tick(&s, at(3), LIMIT);
        assert_eq!(d.health.first().map(|h| h.healthy), want, "{state} batch, {before:?} then {status:?}");
    }
}

// Rules 3–4: batch verdicts and rollouts that succeed.

#[test]
fn a_batch_over_the_failure_threshold_halts_with_the_counts_in_its_reason() {
    let mut s =
        one_open_rollout(Tally { failed: 1, unhealthy: 1, healthy: 4, queued: 4, ..Tally::default() });
    s.rollouts[0].batches[0].zone = Some("1".into());
    let d = tick(&s, at(3), LIMIT);
    let reason =
        "2 of 10 machines failed or are unhealthy in batch 1 (region eastus, zone 1): over the 10% threshold";
    let halt = Halt {
        rollout_id: rollout_id(1),
        batches: vec![HaltedBatch { batch_index: 1, reason: reason.into() }],
        reason: reason.into(),
    };
    assert_eq!(d.verdicts.halts, [halt], "machines still waiting do not hold a halt back");
    assert!(d.verdicts.batches_succeeded.is_empty() && d.verdicts.rollouts_succeeded.is_empty());
}

#[test]
fn exactly_at_the_threshold_the_batch_succeeds() {
    // (failed, unhealthy, healthy, threshold) → verdict.
    let cases = [
        (1, 0, 9, 10, "succeed"),
        (0, 1, 9, 10, "succeed"),
        (1, 1, 8, 10, "halt"),
        (1, 0, 19, 5, "succeed"),
        (1, 0, 18, 5, "halt"),
        (0, 0, 10, 0, "succeed"),
        (1, 0, 99, 0, "halt"),
        (10, 0, 0, 100, "succeed"),
        (0, 0, 0, 10, "succeed"),
    ];
    for (failed, unhealthy, healthy, threshold, want) in cases {
        let b = open_batch(1, 1, "eastus", Tally { failed, unhealthy, healthy, ..Tally::default() });
        let got = match batch_verdict(&b, threshold) {
            BatchVerdict::Halt { .. } => "halt",
            BatchVerdict::Succeed => "succeed",
            BatchVerdict::Wait => "wait",
        };
        assert_eq!(got, want, "{failed} failed, {unhealthy} unhealthy, {healthy} healthy at {threshold}%");
    }
}

#[test]
fn a_batch_with_a_machine_waiting_stays_open() {
    for waiting in [
        Tally { pending: 1, ..Tally::default() },
        Tally { queued: 1, ..Tally::default() },
        Tally { awaiting_health: 1, ..Tally::default() },
    ] {
        let machines = Tally { healthy: 20, ..waiting };
        assert_eq!(batch_verdict(&open_batch(1, 1, "eastus", machines), 10), BatchVerdict::Wait);
        assert!(tick(&one_open_rollout(machines), at(3), LIMIT).verdicts.is_empty());
    }
}

#[test]
fn batches_halting_together_give_their_rollout_their_reasons_joined() {
    let bad = Tally { failed: 1, healthy: 1, ..Tally::default() };
    let mut zoned = open_batch(3, 1, "westus", bad);
    zoned.zone = Some("2".into());
    let done = open_batch(2, 1, "centralus", Tally { healthy: 3, ..Tally::default() });
    let s =
        snapshot(vec![rollout(1, RolloutState::Running, vec![open_batch(1, 1, "eastus", bad), done, zoned])]);
    let d = tick(&s, at(3), LIMIT);
    let halt = &d.verdicts.halts[0];
    assert_eq!(halt.batches.iter().map(|b| b.batch_index).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        halt.reason,
        "1 of 2 machines failed or are unhealthy in batch 1 (region eastus): over the 10% threshold; \
         1 of 2 machines failed or are unhealthy in batch 3 (region westus, zone 2): over the 10% threshold"
    );
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 2)], "a batch done succeeds beside a halt");
    assert!(d.verdicts.rollouts_succeeded.is_empty());
}

#[test]
fn only_open_batches_of_running_rollouts_are_judged() {
    let bad = Tally { failed: 5, ..Tally::default() };
    for state in [RolloutState::Paused, RolloutState::Halted] {
        let s = snapshot(vec![rollout(1, state, vec![open_batch(1, 1, "eastus", bad)])]);
        assert!(tick(&s, at(3), LIMIT).verdicts.is_empty(), "{state}");
    }
    let s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![BatchRow { machines: bad, ..batch(1, 1, "eastus", BatchState::Pending) }],
    )]);
    assert!(tick(&s, at(3), LIMIT).verdicts.halts.is_empty());
}

#[test]
fn the_last_batch_succeeding_finishes_its_rollout_in_the_same_tick() {
    let s = snapshot(vec![
        rollout(
            1,
            RolloutState::Running,
            vec![
                batch(1, 1, "eastus", BatchState::Succeeded),
                open_batch(2, 2, "westus", Tally { healthy: 2, ..Tally::default() }),
            ],
        ),
        rollout(2, RolloutState::Running, vec![batch(1, 1, "eastus", BatchState::Succeeded)]),
        rollout(3, RolloutState::Paused, vec![batch(1, 1, "eastus", BatchState::Succeeded)]),
    ]);
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 2)]);
    assert_eq!(
        d.verdicts.rollouts_succeeded,
        [rollout_id(1), rollout_id(2)],
        "a paused rollout waits for its resume"
    );
    assert!(d.opened.is_empty());
}

// Rule 5: batches that open.

#[test]
fn the_regions_of_a_wave_open_in_parallel_each_one_batch_at_a_time() {
    let pending = |i, wave, region| batch(i, wave, region, BatchState::Pending);
    let s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            pending(1, 1, "eastus"),
            pending(2, 1, "eastus"),
            pending(3, 1, "westeurope"),
            pending(4, 2, "westus"),
        ],
    )]);
    assert_eq!(tick(&s, at(0), LIMIT).opened, [key(1, 1), key(1, 3)]);
}

#[test]
fn a_regions_next_batch_opens_in_the_tick_its_previous_one_succeeds() {
    let s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            open_batch(1, 1, "eastus", Tally { healthy: 1, ..Tally::default() }),
            batch(2, 1, "eastus", BatchState::Pending),
            open_batch(3, 1, "westeurope", Tally { queued: 1, ..Tally::default() }),
            batch(4, 2, "westus", BatchState::Pending),
        ],
    )]);
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(d.verdicts.batches_succeeded, [key(1, 1)]);
    assert_eq!(d.opened, [key(1, 2)], "wave 2 waits for westeurope");
}

#[test]
fn the_next_wave_opens_only_when_every_batch_of_this_one_succeeded() {
    let s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            batch(1, 1, "eastus", BatchState::Succeeded),
            open_batch(2, 1, "westeurope", Tally { healthy: 1, ..Tally::default() }),
            batch(3, 2, "westus", BatchState::Pending),
            batch(4, 2, "northeurope", BatchState::Pending),
            batch(5, 3, "eastus2", BatchState::Pending),
        ],
    )]);
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(d.opened, [key(1, 3), key(1, 4)]);
}

#[test]
fn a_halted_batch_holds_its_region_and_the_next_wave() {
    let s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            batch(1, 1, "eastus", BatchState::Halted),
            batch(2, 1, "eastus", BatchState::Pending),
            batch(3, 1, "westeurope", BatchState::Pending),
            batch(4, 2, "westus", BatchState::Pending),
        ],
    )]);
    assert_eq!(tick(&s, at(3), LIMIT).opened, [key(1, 3)]);
}

#[test]
fn a_paused_rollout_opens_no_batch() {
    for state in [RolloutState::Paused, RolloutState::Halted, RolloutState::Canceled] {
        let s = snapshot(vec![rollout(
            1,
            state,
            vec![batch(1, 1, "eastus", BatchState::Succeeded), batch(2, 2, "westus", BatchState::Pending)],
        )]);
        assert!(tick(&s, at(3), LIMIT).opened.is_empty(), "{state}");
    }
}

#[test]
fn a_rollout_halted_in_this_tick_opens_nothing() {
    let mut s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            open_batch(1, 1, "eastus", Tally { queued: 1, healthy: 1, ..Tally::default() }),
            batch(2, 1, "westeurope", BatchState::Pending),
        ],
    )]);
    s.ended_jobs = vec![ended(1, 1, 1, JobState::Failed, None)];
    s.candidates = vec![candidate(1, 2, 2)];
    let d = tick(&s, at(3), LIMIT);
    assert_eq!(d.verdicts.halts.len(), 1);
    assert!(d.opened.is_empty() && d.enqueue.is_empty());
}

// Rule 6: missed windows.

#[test]
fn a_missed_window_moves_to_the_window_in_progress_or_the_next_however_far_the_clock_jumped() {
    let missed = Missed {
        rollout_id: rollout_id(1),
        batch_index: 1,
        machine_id: machine(1),
        cancel_job: Some(job(1)),
        window_end: at(5),
        attempts: 1,
    };
    // (now, the window it gets): the nightly window is 01:00–05:00 UTC; one in progress is
    // taken while an hour of it is left.
    let day = |d: i64, h: i64| at(24 * d + h);
    let cases = [
        (at(5), day(1, 1)),
        (day(0, 23), day(1, 1)),
        (day(1, 1), day(1, 1)),
        (day(1, 1) + Duration::seconds(1), day(1, 1)),
        (day(1, 4), day(1, 1)),
        (day(1, 4) + Duration::seconds(1), day(2, 1)),
        (day(400, 12), day(401, 1)),
        (day(400, 2), day(400, 1)),
    ];
    for (now, start) in cases {
        let moved = progress::moved(&missed, &nightly(), now);
        let end = start + Duration::hours(4);
        assert_eq!(moved.to, MissedMove::Reschedule { start, end }, "at {now}");
        assert!(end - now >= Duration::hours(1));
        assert_eq!((moved.attempts, moved.cancel_job), (2, Some(job(1))));
    }
}

#[test]
fn a_schedule_without_windows_fails_the_missed_machine() {
    let schedule = Schedule::new(ScheduleSpec {
        recurrence: RecurrenceSpec {
            frequency: Frequency::Daily,
            interval: 1,
            days_of_week: vec![],
            day_of_month: None,
            nth_weekday: None,
            offset_days: 0,
        },
        start_time: NaiveTime::from_hms_opt(1, 0, 0).unwrap(),
        duration: Duration::hours(4),
        timezone: Tz::UTC,
        blackouts: vec![Blackout { from: at(0), to: at(24 * 366 * 20) }],
    })
    .unwrap();
    assert_eq!(next_window_after_miss(&schedule, at(5)), MissedMove::Fail { reason: NO_WINDOW_LEFT });
    let missed = Missed {
        rollout_id: rollout_id(1),
        batch_index: 1,
        machine_id: machine(1),
        cancel_job: None,
        window_end: at(5),
        attempts: 3,
    };
    let moved = progress::moved(&missed, &schedule, at(5));
    assert_eq!(
        (moved.to, moved.attempts),
        (MissedMove::Fail { reason: NO_WINDOW_LEFT }, 3),
        "a failure takes no window"
    );
    assert_eq!(NO_WINDOW_LEFT, "no maintenance window left in the schedule to retry the install in");
}

#[test]
fn a_window_ending_exactly_now_is_missed_and_no_longer_due() {
    let mut s = one_open_rollout(Tally { pending: 1, ..Tally::default() });
    s.candidates = vec![candidate(1, 1, 1)];
    let d = tick(&s, at(5) - Duration::seconds(1), LIMIT);
    assert_eq!((d.enqueue.len(), d.missed.len()), (1, 0));
    let d = tick(&s, at(5), LIMIT);
    assert_eq!((d.enqueue.len(), d.missed.len()), (0, 1));
    assert_eq!((d.missed[0].window_end, d.missed[0].attempts), (at(5), 1));
}

#[test]
fn an_unclaimed_job_whose_window_ended_is_canceled_whatever_the_rollout_state() {
    for state in [RolloutState::Running, RolloutState::Paused, RolloutState::Halted] {
        let mut s = snapshot(vec![rollout(1, state, vec![batch(1, 1, "eastus", BatchState::Halted)])]);
        s.candidates =
            vec![Candidate { state: InstallState::Queued, job_id: Some(job(1)), ..candidate(1, 1, 1) }];
        let d = tick(&s, at(6), LIMIT);
        assert_eq!(d.missed.iter().map(|m| m.cancel_job).collect::<Vec<_>>(), [Some(job(1))], "{state}");
    }
}

#[test]
fn a_pending_machine_moves_only_in_an_open_batch_of_a_running_rollout() {
    // (rollout, the machine's batch, its wave): batch 1 of wave 1 still has a job out.
    let cases = [
        (RolloutState::Running, BatchState::Open, 1, true),
        (RolloutState::Running, BatchState::Pending, 1, true),
        (RolloutState::Running, BatchState::Pending, 2, false),
        (RolloutState::Paused, BatchState::Open, 1, false),
        (RolloutState::Halted, BatchState::Halted, 1, false),
    ];
    for (rollout_state, batch_state, wave, moves) in cases {
        let waiting = open_batch(1, 1, "eastus", Tally { queued: 1, ..Tally::default() });
        let mut s = snapshot(vec![rollout(
            1,
            rollout_state,
            vec![
                waiting,
                BatchRow {
                    machines: Tally { pending: 1, ..Tally::default() },
                    ..batch(2, wave, "westus", batch_state)
                },
            ],
        )]);
        s.candidates = vec![candidate(1, 2, 2)];
        assert_eq!(
            tick(&s, at(6), LIMIT).missed.len(),
            usize::from(moves),
            "{rollout_state} rollout, {batch_state} batch in wave {wave} (pending in wave 1: opens now)"
        );
    }
}

#[test]
fn missed_machines_go_soonest_ended_first_up_to_the_limit() {
    let mut s = one_open_rollout(Tally { pending: 3, ..Tally::default() });
    s.candidates = (1..=3)
        .map(|m| Candidate {
            window_start: at(-10 - m as i64),
            window_end: at(3 - m as i64),
            ..candidate(1, 1, m)
        })
        .collect();
    let d = tick(&s, at(6), 2);
    assert_eq!(d.missed.iter().map(|m| m.machine_id).collect::<Vec<_>>(), [machine(3), machine(2)]);
}

// Rule 7: installs that start.

#[test]
fn a_machine_is_enqueued_only_inside_its_window() {
    let mut s = one_open_rollout(Tally { pending: 1, ..Tally::default() });
    s.candidates = vec![candidate(1, 1, 1)];
    for (now, due) in [(at(1) - Duration::seconds(1), false), (at(1), true), (at(3), true), (at(5), false)] {
        assert_eq!(tick(&s, now, LIMIT).enqueue.len(), usize::from(due), "at {now}");
    }
}

#[test]
fn a_halted_rollout_never_enqueues() {
    for state in [RolloutState::Halted, RolloutState::Paused, RolloutState::Canceled] {
        let mut s = snapshot(vec![rollout(
            1,
            state,
            vec![open_batch(1, 1, "eastus", Tally { pending: 1, ..Tally::default() })],
        )]);
        s.candidates = vec![candidate(1, 1, 1)];
        assert!(tick(&s, at(2), LIMIT).enqueue.is_empty(), "{state}");
    }
}

#[test]
fn a_batch_halted_in_this_tick_enqueues_nothing() {
    let mut s = one_open_rollout(Tally { pending: 1, queued: 1, ..Tally::default() });
    s.ended_jobs = vec![ended(1, 1, 2, JobState::Failed, None)];
    s.candidates = vec![candidate(1, 1, 1)];
    let d = tick(&s, at(2), LIMIT);
    assert_eq!(d.verdicts.halts.len(), 1);
    assert!(d.enqueue.is_empty() && d.missed.is_empty());
}

#[test]
fn a_machine_busy_with_another_install_waits() {
    let mut s = one_open_rollout(Tally { pending: 2, ..Tally::default() });
    s.candidates = vec![Candidate { busy: true, ..candidate(1, 1, 1) }, candidate(1, 1, 2)];
    assert_eq!(enqueued(&tick(&s, at(2), LIMIT)), [(rollout_id(1), machine(2))]);
}

#[test]
fn the_latest_rollout_goes_first_for_a_machine_due_in_two() {
    let open = |n| {
        rollout(
            n,
            RolloutState::Running,
            vec![open_batch(1, 1, "eastus", Tally { pending: 1, ..Tally::default() })],
        )
    };
    let mut s = snapshot(vec![open(2), open(1)]);
    s.candidates = vec![candidate(1, 1, 1), candidate(2, 1, 1)];
    assert_eq!(enqueued(&tick(&s, at(2), LIMIT)), [(rollout_id(2), machine(1))]);

    // Not due in the latest one (outside its window there): the older one goes.
    s.candidates[1].window_start = at(3);
    assert_eq!(enqueued(&tick(&s, at(2), LIMIT)), [(rollout_id(1), machine(1))]);
}

#[test]
fn the_soonest_closing_windows_go_first_up_to_the_limit() {
    let mut s = one_open_rollout(Tally { pending: 4, ..Tally::default() });
    s.candidates =
        (1..=4).map(|m| Candidate { window_end: at(10 - m as i64), ..candidate(1, 1, m) }).collect();
    let d = tick(&s, at(2), 3);
    assert_eq!(
        d.enqueue.iter().map(|e| e.machine_id).collect::<Vec<_>>(),
        [machine(4), machine(3), machine(2)]
    );
    assert!(tick(&s, at(2), 0).enqueue.is_empty());
}

#[test]
fn a_job_gets_what_is_left_of_the_window_and_at_least_a_minute() {
    for (left, secs) in [
        (Duration::hours(3), 10_800),
        (Duration::seconds(61), 61),
        (Duration::seconds(59), 60),
        (Duration::seconds(1), 60),
    ] {
        assert_eq!(maximum_duration_secs(at(5), at(5) - left), secs);
    }
    let mut s = one_open_rollout(Tally { pending: 1, ..Tally::default() });
    s.candidates =
        vec![Candidate { attempts: 2, install: CycleKind::Baseline, reboot: true, ..candidate(1, 1, 1) }];
    let e = &tick(&s, at(4) + mins(30), LIMIT).enqueue[0];
    assert_eq!(
        (e.maximum_duration_secs, e.attempt, e.install, e.reboot, e.release_id),
        (1800, 2, CycleKind::Baseline, true, RELEASE)
    );
}

#[test]
fn a_batch_opened_in_this_tick_enqueues_its_machines_inside_their_window_at_once() {
    let mut s = snapshot(vec![rollout(
        1,
        RolloutState::Running,
        vec![
            open_batch(1, 1, "eastus", Tally { healthy: 1, ..Tally::default() }),
            batch(2, 1, "eastus", BatchState::Pending),
            batch(3, 2, "westus", BatchState::Pending),
        ],
    )]);
    s.candidates = vec![candidate(1, 2, 2), candidate(1, 3, 3)];
    let d = tick(&s, at(2), LIMIT);
    assert_eq!(d.opened, [key(1, 2)]);
    assert_eq!(enqueued(&d), [(rollout_id(1), machine(2))], "batch 3 is not open");
}
