//! The job queue against a real PostgreSQL (a fresh database per test): claims under contention,
//! leases and their fencing, the reaper, the per-machine uniqueness rules, wake-ups and history.
//!
//! Every instant is `t0()` moved explicitly; nothing sleeps.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hotpatch_domain::job::{JobKind, JobState, Outcome, RetryPolicy};
use hotpatch_store::jobs::{self, Completion, Fence, Reaped};
use hotpatch_store::operations;
use hotpatch_store::testing::fresh_db;
use hotpatch_store::wakeup::JOB_CHANNEL;
use hotpatch_store::StoreError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sqlx::postgres::{PgListener, PgPoolOptions};
use support::{job, machine, machines, new_operation, on_side_connection, result, secs, succeeded, t0, TTL};
use uuid::Uuid;

const POLICY: RetryPolicy = RetryPolicy { base: TimeDelta::seconds(10), max: TimeDelta::minutes(10) };

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, constraint: &str) {
    match r {
        Err(StoreError::Conflict { constraint: c, .. }) if c == constraint => {}
        other => panic!("expected a conflict on {constraint}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_claimers_never_get_the_same_job() {
    const MACHINES: usize = 5_000;
    const CLAIMERS: u64 = 16;
    let (db, ids, enqueued, pool) = assessed_machines(MACHINES, CLAIMERS as u32).await;
    let all = claim_concurrently(CLAIMERS, &ids, &pool, |n, ids, pool| async move {
        // Every claimer sweeps the same 64 machines at a time, each in its own order, so
        // several of them go for the same job at once.
        let mut rng = StdRng::seed_from_u64(n);
        let mut conn = pool.acquire().await.unwrap();
        let mut claimed = vec![];
        for window in ids.chunks(64) {
            let mut order = window.to_vec();
            order.shuffle(&mut rng);
            for machine_id in order {
                let Some(job) = jobs::claim(&mut *conn, machine_id, t0(), TTL).await.unwrap() else {
                    continue;
                };
                assert_eq!(job.machine_id, machine_id);
                let done =
                    jobs::complete(&mut conn, job.id, machine_id, &succeeded(&job), t0() + secs(1)).await;
                assert!(matches!(done, Ok(Ok(Completion::Recorded(_)))), "{done:?}");
                claimed.push(job.id);
            }
        }
        claimed
    })
    .await;
    assert_each_claimed_and_succeeded_once(&db.pool, &all, &enqueued).await;
}

/// A fresh database with `n` machines, an assessment queued for each (the pairs of machine and
/// job), and a pool for `claimers` concurrent claimers.
async fn assessed_machines(
    n: usize,
    claimers: u32,
) -> (hotpatch_store::testing::TestDb, Arc<Vec<Uuid>>, Vec<(Uuid, Uuid)>, sqlx::PgPool) {
    let db = fresh_db().await;
    let ids = machines(&db.pool, n).await;
    let enqueued =
        jobs::enqueue_assessments(&mut db.pool.acquire().await.unwrap(), None, &ids, 0, t0()).await.unwrap();
    assert_eq!(enqueued.len(), n);
    let pool = PgPoolOptions::new().max_connections(claimers + 2).connect(&db.url).await.unwrap();
    (db, Arc::new(ids), enqueued, pool)
}

/// Runs `claimers` tasks of `claim` (given its number, the machines and the pool) at once and
/// returns every job id they claimed.
async fn claim_concurrently<F, Fut>(
    claimers: u64,
    ids: &Arc<Vec<Uuid>>,
    pool: &sqlx::PgPool,
    claim: F,
) -> Vec<Uuid>
where
    F: Fn(u64, Arc<Vec<Uuid>>, sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = Vec<Uuid>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..claimers {
        tasks.spawn(claim(n, ids.clone(), pool.clone()));
    }
    let mut all = vec![];
    while let Some(claimed) = tasks.join_next().await {
        all.extend(claimed.unwrap());
    }
    all
}

/// Every enqueued job was claimed exactly once (`claimed`) and succeeded on its first attempt.
async fn assert_each_claimed_and_succeeded_once(
    pool: &sqlx::PgPool,
    claimed: &[Uuid],
    enqueued: &[(Uuid, Uuid)],
) {
    let distinct: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "a job was claimed twice");
    let expected: HashSet<Uuid> = enqueued.iter().map(|(_, job)| *job).collect();
    assert_eq!(distinct, expected, "every job was claimed");
    let (succeeded_once, total): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where state = 'succeeded' and attempt = 1 and finished_at is not null),
                count(*)
         from job",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((succeeded_once, total), (enqueued.len() as i64, enqueued.len() as i64));
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_after_its_backoff_and_fences_out_the_stale_holder() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let id = jobs::enqueue(&mut *conn, &job(JobKind::Install, m, t0())).await.unwrap();

    let first = jobs::claim(&mut *conn, m, t0(), secs(60)).await.unwrap().unwrap();
    assert_eq!((first.id, first.attempt, first.lease.expires_at), (id, 1, t0() + secs(60)));
    let extended =
        jobs::heartbeat(&mut conn, id, m, first.lease.id, t0() + secs(30), secs(60)).await.unwrap();
    assert_eq!(extended.unwrap().expires_at, t0() + secs(90));
    let reaped = jobs::reap_expired(&mut conn, t0() + secs(61), &POLICY, 100, || 0.5).await.unwrap();
    assert_eq!(reaped, Reaped::default(), "the heartbeat moved the expiry");

    let lost_at = t0() + secs(91);
    let reaped = jobs::reap_expired(&mut conn, lost_at, &POLICY, 100, || 0.5).await.unwrap();
    assert_eq!(reaped, Reaped { requeued: 1, failed: 0 });
    let requeued = jobs::get(&mut *conn, id, m).await.unwrap().unwrap();
    let retry_at = POLICY.next_run_at(lost_at, 1, 0.5);
    assert_eq!(retry_at, lost_at + TimeDelta::milliseconds(7_500), "equal jitter: 5 s + half of 5 s");
    assert_eq!((requeued.state, requeued.lease, requeued.run_after), (JobState::Queued, None, retry_at));
    assert_eq!(requeued.error.as_deref(), Some("lease expired"));

    assert!(jobs::claim(&mut *conn, m, lost_at, TTL).await.unwrap().is_none(), "still backing off");
    let early = retry_at - TimeDelta::milliseconds(1);
    assert!(jobs::claim(&mut *conn, m, early, TTL).await.unwrap().is_none(), "still backing off");
    let second = jobs::claim(&mut *conn, m, retry_at, TTL).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempt), (id, 2));
    assert_ne!(second.lease.id, first.lease.id);

    let stale_beat = jobs::heartbeat(&mut conn, id, m, first.lease.id, retry_at, TTL).await.unwrap();
    assert_eq!(stale_beat, Err(Fence::LeaseLost));
    let stale = result(first.lease.id, Outcome::Succeeded, None);
    let stale_result = jobs::complete(&mut conn, id, m, &stale, retry_at).await.unwrap();
    assert_eq!(stale_result, Err(Fence::LeaseLost));

    let done = jobs::complete(&mut conn, id, m, &succeeded(&second), retry_at + secs(5)).await.unwrap();
    let Ok(Completion::Recorded(done)) = done else { panic!("{done:?}") };
    assert_eq!((done.state, done.attempt, done.lease), (JobState::Succeeded, 2, None));
    assert_eq!(done.finished_at, Some(retry_at + secs(5)));
    let late = jobs::complete(&mut conn, id, m, &stale, retry_at + secs(6)).await.unwrap();
    assert_eq!(late, Err(Fence::LeaseLost), "a stale result after the end changes nothing");
    assert_eq!(jobs::get(&mut *conn, id, m).await.unwrap().unwrap(), done);
}

#[tokio::test]
async fn a_job_out_of_attempts_fails_when_its_lease_expires() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let id = jobs::enqueue(&mut *conn, &jobs::NewJob { max_attempts: 2, ..job(JobKind::Reboot, m, t0()) })
        .await
        .unwrap();
    let first = jobs::claim(&mut *conn, m, t0(), secs(60)).await.unwrap().unwrap();
    let reaped = jobs::reap_expired(&mut conn, t0() + secs(61), &POLICY, 100, || 0.0).await.unwrap();
    assert_eq!(reaped, Reaped { requeued: 1, failed: 0 });
    let retry_at = POLICY.next_run_at(t0() + secs(61), first.attempt, 0.0);
    let second = jobs::claim(&mut *conn, m, retry_at, secs(60)).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);

    let end = retry_at + secs(61);
    let reaped = jobs::reap_expired(&mut conn, end, &POLICY, 100, || 0.0).await.unwrap();
    assert_eq!(reaped, Reaped { requeued: 0, failed: 1 });
    let failed = jobs::get(&mut *conn, id, m).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempt, failed.lease), (JobState::Failed, 2, None));
    assert_eq!(failed.finished_at, Some(end));
    let error = failed.error.unwrap();
    assert!(error.contains("2 of 2"), "the error names the attempts: {error}");
    assert!(jobs::claim(&mut *conn, m, end + TimeDelta::days(1), TTL).await.unwrap().is_none());
    let late = jobs::complete(&mut conn, id, m, &succeeded(&second), end).await.unwrap();
    assert_eq!(late, Err(Fence::LeaseLost));
}

#[tokio::test]
async fn a_machine_has_at_most_one_active_disruptive_job() {
    let db = fresh_db().await;
    let (m, other) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let install = jobs::NewJob { priority: 10, ..job(JobKind::Install, m, t0()) };
    jobs::enqueue(&mut *conn, &install).await.unwrap();
    for kind in [JobKind::Install, JobKind::Rollback, JobKind::Reboot] {
        let second = jobs::enqueue(&mut *conn, &job(kind, m, t0())).await;
        assert_conflict(second, "job_one_active_disruptive");
    }
    jobs::enqueue(&mut *conn, &job(JobKind::Assess, m, t0())).await.expect("an assessment runs alongside");
    jobs::enqueue(&mut *conn, &job(JobKind::Install, other, t0())).await.expect("another machine's is fine");

    let leased = jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap();
    assert_eq!(leased.kind, JobKind::Install);
    assert_conflict(
        jobs::enqueue(&mut *conn, &job(JobKind::Rollback, m, t0())).await,
        "job_one_active_disruptive",
    );

    let failed = result(leased.lease.id, Outcome::Failed, Some("0x800f0922"));
    jobs::complete(&mut conn, leased.id, m, &failed, t0() + secs(60)).await.unwrap().unwrap();
    jobs::enqueue(&mut *conn, &job(JobKind::Rollback, m, t0() + secs(60)))
        .await
        .expect("accepted once the first has ended");
}

#[tokio::test]
async fn a_second_assessment_of_a_machine_joins_the_queued_one() {
    let db = fresh_db().await;
    let (m, busy) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let (op1, op2) = (new_operation(&mut conn, t0()).await, new_operation(&mut conn, t0()).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let first = jobs::enqueue_assessments(&mut conn, Some(op1), &[m, busy], 0, t0()).await.unwrap();
    let job_of = |pairs: &[(Uuid, Uuid)], machine_id: Uuid| {
        pairs.iter().find(|(mm, _)| *mm == machine_id).map(|(_, j)| *j).unwrap()
    };
    let (joined, running) = (job_of(&first, m), job_of(&first, busy));
    assert_eq!(jobs::claim(&mut *conn, busy, t0(), TTL).await.unwrap().unwrap().id, running);

    let second =
        jobs::enqueue_assessments(&mut conn, Some(op2), &[m, busy], 5, t0() + secs(60)).await.unwrap();
    assert_eq!(job_of(&second, m), joined, "joined the queued assessment");
    assert_ne!(job_of(&second, busy), running, "a running assessment is not joined: a new one is queued");
    assert_conflict(jobs::enqueue(&mut *conn, &job(JobKind::Assess, m, t0())).await, "job_one_queued_assess");
    let priority: i16 = sqlx::query_scalar("select priority from job where id = $1")
        .bind(joined)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(priority, 5, "the higher priority of the two requests");
    jobs::enqueue_assessments(&mut conn, None, &[m], 1, t0() + secs(120)).await.unwrap();
    let priority: i16 = sqlx::query_scalar("select priority from job where id = $1")
        .bind(joined)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(priority, 5, "a lower priority does not lower it");

    let stored = jobs::get(&mut *conn, joined, m).await.unwrap().unwrap();
    assert_eq!((stored.operation_id, stored.run_after), (Some(op1), t0()), "creator and start kept");
    let count: i64 = sqlx::query_scalar("select count(*) from job where machine_id = $1")
        .bind(m)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(count, 1);
    for op in [op1, op2] {
        let view = operations::get(&mut conn, op, 100).await.unwrap();
        let mine: Vec<Uuid> = view.results.iter().filter(|r| r.machine_id == m).map(|r| r.job_id).collect();
        assert_eq!(mine, [joined], "operation {op} sees the shared job");
        assert_eq!(view.machines.total, 2);
    }
}

#[tokio::test]
async fn another_machines_job_is_invisible() {
    let db = fresh_db().await;
    let (a, b) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let id = jobs::enqueue(&mut *conn, &job(JobKind::Install, a, t0())).await.unwrap();
    assert!(jobs::claim(&mut *conn, b, t0(), TTL).await.unwrap().is_none());
    let claimed = jobs::claim(&mut *conn, a, t0(), TTL).await.unwrap().unwrap();

    let beat = jobs::heartbeat(&mut conn, id, b, claimed.lease.id, t0() + secs(1), TTL).await.unwrap();
    assert_eq!(beat, Err(Fence::NotFound));
    let done = jobs::complete(&mut conn, id, b, &succeeded(&claimed), t0() + secs(1)).await.unwrap();
    assert_eq!(done, Err(Fence::NotFound));
    assert_eq!(jobs::get(&mut *conn, id, b).await.unwrap(), None);
    assert!(jobs::history(&mut *conn, b, t0() - TimeDelta::days(3650), 100).await.unwrap().is_empty());

    let held = jobs::get(&mut *conn, id, a).await.unwrap().unwrap();
    assert_eq!((held.state, held.lease), (JobState::Leased, Some(claimed.lease)), "untouched");
    let done = jobs::complete(&mut conn, id, a, &succeeded(&claimed), t0() + secs(2)).await.unwrap();
    assert!(matches!(done, Ok(Completion::Recorded(_))), "{done:?}");
}

#[tokio::test]
async fn the_same_result_sent_twice_is_recorded_once() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let id = jobs::enqueue(&mut *conn, &job(JobKind::Install, m, t0())).await.unwrap();
    let claimed = jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap();
    let report = hotpatch_domain::job::JobResult {
        installed: vec!["KB5040437".parse().unwrap()],
        rebooted: Some(false),
        ..succeeded(&claimed)
    };

    let first = jobs::complete(&mut conn, id, m, &report, t0() + secs(10)).await.unwrap();
    let Ok(Completion::Recorded(recorded)) = first else { panic!("{first:?}") };
    assert_eq!(recorded.finished_at, Some(t0() + secs(10)));
    assert_eq!(recorded.result, Some(serde_json::to_value(&report).unwrap()));
    let again = jobs::complete(&mut conn, id, m, &report, t0() + secs(20)).await.unwrap();
    assert_eq!(again, Ok(Completion::AlreadyRecorded(recorded.clone())), "nothing changed, finished_at kept");

    let other = result(claimed.lease.id, Outcome::Failed, Some("changed my mind"));
    assert_eq!(
        jobs::complete(&mut conn, id, m, &other, t0() + secs(30)).await.unwrap(),
        Err(Fence::LeaseLost)
    );
    assert_eq!(jobs::get(&mut *conn, id, m).await.unwrap().unwrap(), recorded);
}

#[tokio::test]
async fn claims_take_the_highest_priority_then_the_earliest_run_after_and_nothing_before_its_time() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    let (by_priority, by_time, future) = (ids[0], ids[1], ids[2]);
    let mut conn = db.pool.acquire().await.unwrap();

    // A higher priority wins even though it became claimable later.
    jobs::enqueue(&mut *conn, &job(JobKind::Assess, by_priority, t0() - secs(600))).await.unwrap();
    let urgent = jobs::NewJob { priority: 5, ..job(JobKind::Install, by_priority, t0()) };
    jobs::enqueue(&mut *conn, &urgent).await.unwrap();
    // At equal priority the one claimable first wins, though enqueued second.
    jobs::enqueue(&mut *conn, &job(JobKind::Reboot, by_time, t0() - secs(60))).await.unwrap();
    jobs::enqueue(&mut *conn, &job(JobKind::Assess, by_time, t0() - secs(600))).await.unwrap();
    // A future job, even of the highest priority, waits for its time.
    let later = jobs::NewJob { priority: 9, ..job(JobKind::Install, future, t0() + secs(3600)) };
    jobs::enqueue(&mut *conn, &later).await.unwrap();

    let mut next =
        async |m: Uuid, at: DateTime<Utc>| jobs::claim(&mut *conn, m, at, TTL).await.unwrap().map(|j| j.kind);
    assert_eq!(next(by_priority, t0()).await, Some(JobKind::Install));
    assert_eq!(next(by_priority, t0()).await, Some(JobKind::Assess));
    assert_eq!(next(by_time, t0()).await, Some(JobKind::Assess));
    assert_eq!(next(by_time, t0()).await, Some(JobKind::Reboot));
    assert_eq!(next(future, t0()).await, None);
    assert_eq!(next(future, t0() + secs(3599)).await, None);
    assert_eq!(next(future, t0() + secs(3600)).await, Some(JobKind::Install));
}

/// Far enough ahead of the database's clock that the trigger (which compares with `now()`)
/// leaves these jobs to `notify_due`.
fn far_future() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0).unwrap()
}

async fn next_wakeup(listener: &mut PgListener) -> Uuid {
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a wake-up within 5 s")
        .unwrap();
    assert_eq!(n.channel(), JOB_CHANNEL);
    n.payload().parse().unwrap()
}

#[tokio::test]
async fn a_job_becoming_claimable_wakes_its_machine() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 4).await;
    let (now, later, much_later, marker) = (ids[0], ids[1], ids[2], ids[3]);
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen(JOB_CHANNEL).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();

    jobs::enqueue(&mut *conn, &job(JobKind::Install, now, t0())).await.unwrap();
    assert_eq!(next_wakeup(&mut listener).await, now, "enqueueing a claimable job wakes its machine");

    // Not yet claimable: no wake-up at enqueue (the marker's arrives first), one when due.
    jobs::enqueue(&mut *conn, &job(JobKind::Install, later, far_future())).await.unwrap();
    jobs::enqueue(&mut *conn, &job(JobKind::Install, much_later, far_future() + secs(3600))).await.unwrap();
    jobs::enqueue(&mut *conn, &job(JobKind::Install, marker, t0())).await.unwrap();
    assert_eq!(next_wakeup(&mut listener).await, marker);

    let sent = jobs::notify_due(&mut *conn, far_future() - secs(1), far_future() + secs(1)).await.unwrap();
    assert_eq!(sent, 1, "only the job whose time came in the window");
    assert_eq!(next_wakeup(&mut listener).await, later);
    let sent = jobs::notify_due(&mut *conn, far_future() + secs(1), far_future() + secs(60)).await.unwrap();
    assert_eq!(sent, 0, "a window with nothing becoming due sends nothing");
}

#[tokio::test]
async fn history_lists_a_machines_jobs_newest_first_within_the_window() {
    let db = fresh_db().await;
    let (m, other) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let mut created = vec![];
    for kind in [JobKind::Assess, JobKind::Install, JobKind::Reboot] {
        let id = jobs::enqueue(&mut *conn, &job(kind, m, t0())).await.unwrap();
        let claimed = jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap();
        jobs::complete(&mut conn, id, m, &succeeded(&claimed), t0() + secs(1)).await.unwrap().unwrap();
        created.push(id);
    }
    jobs::enqueue(&mut *conn, &job(JobKind::Assess, other, t0())).await.unwrap();
    let newest_first: Vec<Uuid> = created.iter().rev().copied().collect();

    let all = jobs::history(&mut *conn, m, t0() - TimeDelta::days(3650), 100).await.unwrap();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    assert!(all.iter().all(|j| j.machine_id == m && j.state == JobState::Succeeded));
    let two = jobs::history(&mut *conn, m, t0() - TimeDelta::days(3650), 2).await.unwrap();
    assert_eq!(two.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first[..2]);

    // The oldest job moves out of a 30-day window.
    sqlx::query("update job set created_at = created_at - interval '40 days' where id = $1")
        .bind(created[0])
        .execute(&mut *conn)
        .await
        .unwrap();
    let since = all[0].created_at - TimeDelta::days(30);
    let window = jobs::history(&mut *conn, m, since, 100).await.unwrap();
    assert_eq!(window.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first[..2]);
}

#[tokio::test]
async fn history_windows_are_measured_on_the_callers_clock() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let week_ago = t0() - TimeDelta::days(7);
    let [(_, old)] = jobs::enqueue_assessments(&mut conn, None, &[m], 0, week_ago).await.unwrap()[..] else {
        panic!("one job")
    };
    let claimed = jobs::claim(&mut *conn, m, week_ago, TTL).await.unwrap().unwrap();
    jobs::complete(&mut conn, old, m, &succeeded(&claimed), week_ago + secs(1)).await.unwrap().unwrap();
    let [(_, recent)] = jobs::enqueue_assessments(&mut conn, None, &[m], 0, t0()).await.unwrap()[..] else {
        panic!("one job")
    };

    let last_three_days = jobs::history(&mut *conn, m, t0() - TimeDelta::days(3), 100).await.unwrap();
    assert_eq!(last_three_days.iter().map(|j| j.id).collect::<Vec<_>>(), [recent]);
    assert_eq!(last_three_days[0].created_at, t0());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_or_result_landing_during_a_reaper_pass_is_never_overwritten() {
    let db = fresh_db().await;
    let (a, b) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut conn = db.pool.acquire().await.unwrap();
    let retried = jobs::enqueue(&mut *conn, &job(JobKind::Install, a, t0())).await.unwrap();
    let last = jobs::enqueue(&mut *conn, &jobs::NewJob { max_attempts: 1, ..job(JobKind::Install, b, t0()) })
        .await
        .unwrap();
    let held_a = jobs::claim(&mut *conn, a, t0(), secs(60)).await.unwrap().unwrap();
    let held_b = jobs::claim(&mut *conn, b, t0(), secs(60)).await.unwrap().unwrap();
    let now = t0() + secs(61);

    // While the reaper runs (its jitter callback sits between its statements), the agents of
    // both jobs report in from another connection, as they would through another replica.
    let url = db.url.clone();
    let mut side = None;
    let reaped = jobs::reap_expired(&mut conn, now, &POLICY, 100, || {
        if side.is_none() {
            let (url, held_a, held_b) = (url.clone(), held_a.clone(), held_b.clone());
            side = Some(on_side_connection(&url, move |mut c| async move {
                let beat = jobs::heartbeat(&mut c, held_a.id, a, held_a.lease.id, now, TTL).await;
                let done = jobs::complete(&mut c, held_b.id, b, &succeeded(&held_b), now).await;
                (beat.ok(), done.ok())
            }));
        }
        0.0
    })
    .await;
    let (beat, done) = side.expect("the reaper retried job a");

    let a_now = jobs::get(&mut *conn, retried, a).await.unwrap().unwrap();
    if let Some(Ok(lease)) = beat {
        assert_eq!(a_now.lease, Some(lease), "a heartbeat that was granted must hold; reaped: {reaped:?}");
    }
    let b_now = jobs::get(&mut *conn, last, b).await.unwrap().unwrap();
    if let Some(Ok(Completion::Recorded(_))) = done {
        assert_eq!(b_now.state, JobState::Succeeded, "a recorded result must stand; reaped: {reaped:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_batch_claimers_never_get_the_same_job() {
    const MACHINES: usize = 3_000;
    const CLAIMERS: u64 = 8;
    let (db, ids, enqueued, pool) = assessed_machines(MACHINES, CLAIMERS as u32).await;
    let all = claim_concurrently(CLAIMERS, &ids, &pool, |n, ids, pool| async move {
        // Every claimer asks for the same 96 machines at a time, in batches of 32 in its own
        // order, so batches of different claimers go for the same jobs at once.
        let mut rng = StdRng::seed_from_u64(n);
        let mut claimed = vec![];
        for window in ids.chunks(96) {
            let mut order = window.to_vec();
            order.shuffle(&mut rng);
            for batch in order.chunks(32) {
                let requests: Vec<jobs::ClaimRequest> = batch
                    .iter()
                    .map(|&machine_id| jobs::ClaimRequest { machine_id, lease_id: Uuid::new_v4() })
                    .collect();
                let got = jobs::claim_many(&pool, &requests, t0(), TTL).await.unwrap();
                for job in &got {
                    let asked = requests.iter().find(|r| r.machine_id == job.machine_id).unwrap();
                    assert_eq!(job.lease.id, asked.lease_id, "each job under its own request's lease");
                    assert_eq!(job.lease.expires_at, t0() + TTL);
                }
                let reports: Vec<_> = got.iter().map(succeeded).collect();
                let results: Vec<jobs::ResultRequest<'_>> = got
                    .iter()
                    .zip(&reports)
                    .map(|(job, result)| jobs::ResultRequest {
                        job_id: job.id,
                        machine_id: job.machine_id,
                        result,
                    })
                    .collect();
                let recorded = jobs::complete_many(&pool, &results, t0() + secs(1)).await.unwrap();
                assert_eq!(recorded.len(), got.len(), "every result held by its lease is recorded");
                claimed.extend(got.iter().map(|j| j.id));
            }
        }
        claimed
    })
    .await;
    assert_each_claimed_and_succeeded_once(&db.pool, &all, &enqueued).await;
}

#[tokio::test]
async fn a_batch_finds_and_records_only_what_each_lease_still_holds() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 4).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut claimed = vec![];
    for &m in &ids {
        jobs::enqueue(&mut *conn, &job(JobKind::Install, m, t0())).await.unwrap();
        claimed.push(jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap());
    }
    let (held, stale, foreign, done) = (&claimed[0], &claimed[1], &claimed[2], &claimed[3]);
    // `done` already ended; `stale` is asked for under a lease it never had; `foreign` by another machine.
    jobs::complete(&mut conn, done.id, done.machine_id, &succeeded(done), t0() + secs(1))
        .await
        .unwrap()
        .unwrap();
    let leases = [
        jobs::LeaseRef { job_id: held.id, machine_id: held.machine_id, lease_id: held.lease.id },
        jobs::LeaseRef { job_id: stale.id, machine_id: stale.machine_id, lease_id: Uuid::new_v4() },
        jobs::LeaseRef { job_id: foreign.id, machine_id: held.machine_id, lease_id: foreign.lease.id },
        jobs::LeaseRef { job_id: done.id, machine_id: done.machine_id, lease_id: done.lease.id },
    ];
    let found = jobs::held_leases(&mut *conn, &leases).await.unwrap();
    assert_eq!(found, vec![(leases[0], held.lease.expires_at)]);
    assert!(jobs::lease_is_fresh(held.lease.expires_at, t0() + secs(29), TTL));
    assert!(
        !jobs::lease_is_fresh(held.lease.expires_at, t0() + secs(31), TTL),
        "a tenth of 5 minutes is 30 s"
    );

    let failed = result(held.lease.id, Outcome::Failed, Some("disk full"));
    let (stale_report, foreign_report, done_report) =
        (result(Uuid::new_v4(), Outcome::Succeeded, None), succeeded(foreign), succeeded(done));
    let results = [
        jobs::ResultRequest { job_id: held.id, machine_id: held.machine_id, result: &failed },
        jobs::ResultRequest { job_id: stale.id, machine_id: stale.machine_id, result: &stale_report },
        jobs::ResultRequest { job_id: foreign.id, machine_id: held.machine_id, result: &foreign_report },
        jobs::ResultRequest { job_id: done.id, machine_id: done.machine_id, result: &done_report },
    ];
    let recorded = jobs::complete_many(&mut *conn, &results, t0() + secs(5)).await.unwrap();
    assert_eq!(
        recorded,
        vec![jobs::Recorded { job_id: held.id, kind: JobKind::Install, state: JobState::Failed }]
    );
    let after = jobs::get(&mut *conn, held.id, held.machine_id).await.unwrap().unwrap();
    assert_eq!(
        (after.state, after.lease, after.error.as_deref()),
        (JobState::Failed, None, Some("disk full"))
    );
    assert_eq!(after.result, Some(serde_json::to_value(&failed).unwrap()));
    assert_eq!(after.finished_at, Some(t0() + secs(5)));
    for untouched in [stale, foreign] {
        let job = jobs::get(&mut *conn, untouched.id, untouched.machine_id).await.unwrap().unwrap();
        assert_eq!((job.state, job.lease), (JobState::Leased, Some(untouched.lease)));
    }
    let ended = jobs::get(&mut *conn, done.id, done.machine_id).await.unwrap().unwrap();
    assert_eq!(ended.finished_at, Some(t0() + secs(1)), "an ended job keeps its first result");
}
