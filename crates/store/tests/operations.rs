//! Operations against a real PostgreSQL (a fresh database per test): idempotent creation, the
//! machines a selector names, and the view derived from the operation's jobs.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hotpatch_domain::job::{JobState, Outcome};
use hotpatch_domain::operation::{MachineCounts, OperationKind, OperationStatus, Selector};
use hotpatch_store::jobs::{self, Completion};
use hotpatch_store::operations::{self, Created, NewOperation};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::wakeup::JOB_CHANNEL;
use hotpatch_store::StoreError;
use sqlx::postgres::PgListener;
use sqlx::PgConnection;
use support::{insert_specs, machines, result, secs, spec, succeeded, t0, TTL};
use uuid::Uuid;

async fn create(
    conn: &mut PgConnection,
    created_by: Option<Uuid>,
    idempotency: Option<(&str, [u8; 32])>,
    request: serde_json::Value,
) -> Created {
    let op =
        NewOperation { kind: OperationKind::Assess, request: &request, created_by, idempotency, now: t0() };
    operations::create(conn, &op).await.unwrap()
}

async fn new_operation(conn: &mut PgConnection) -> Uuid {
    match create(conn, None, None, serde_json::json!({})).await {
        Created::New(id) => id,
        other => panic!("expected a new operation, got {other:?}"),
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_its_operation_and_refuses_another_request() {
    let db = fresh_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let (ci, other_ci) = (Some(Uuid::now_v7()), Some(Uuid::now_v7()));
    let (body, other_body) = ([1u8; 32], [2u8; 32]);
    let request = serde_json::json!({ "selector": { "regions": ["westeurope"] } });

    let Created::New(id) = create(&mut conn, ci, Some(("deploy-42", body)), request.clone()).await else {
        panic!("the first use of a key creates")
    };
    assert_eq!(
        create(&mut conn, ci, Some(("deploy-42", body)), request.clone()).await,
        Created::Replayed(id)
    );
    assert_eq!(
        create(&mut conn, ci, Some(("deploy-42", other_body)), serde_json::json!({})).await,
        Created::KeyReused(id)
    );
    let Created::New(theirs) = create(&mut conn, other_ci, Some(("deploy-42", body)), request.clone()).await
    else {
        panic!("keys are scoped to their creator")
    };
    assert_ne!(theirs, id);
    let (a, b) = (new_operation(&mut conn).await, new_operation(&mut conn).await);
    assert_ne!(a, b, "without a key every request is new");

    let view = operations::get(&mut conn, id, 10).await.unwrap();
    assert_eq!((view.kind, view.created_at), (OperationKind::Assess, t0()));
    let stored: serde_json::Value = sqlx::query_scalar("select request from operation where id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stored, request, "the first request is kept");
}

#[tokio::test]
async fn an_idempotency_key_without_a_creator_still_replays() {
    let db = fresh_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let key = Some(("nightly", [7u8; 32]));
    let Created::New(id) = create(&mut conn, None, key, serde_json::json!({})).await else { panic!("new") };
    assert_eq!(create(&mut conn, None, key, serde_json::json!({})).await, Created::Replayed(id));
}

#[tokio::test]
async fn a_selector_names_the_machines_matching_every_given_part() {
    let db = fresh_db().await;
    let specs = [
        spec("web-1", "westeurope", &[("env", "prod"), ("tier", "web")]),
        spec("web-2", "westeurope", &[("env", "staging"), ("tier", "web")]),
        spec("db-1", "eastus", &[("env", "prod"), ("tier", "db")]),
        spec("web-3", "eastus", &[("env", "prod"), ("tier", "web")]),
    ];
    let ids = insert_specs(&db.pool, &specs).await;
    let [web1, web2, db1, web3] = ids[..] else { panic!("four machines") };
    let labels = |pairs: &[(&str, &str)]| {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>())
    };
    let regions = |r: &[&str]| Some(r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let cases: Vec<(Selector, Vec<Uuid>)> = vec![
        (Selector::default(), vec![web1, web2, db1, web3]),
        (Selector { labels: labels(&[]), ..Default::default() }, vec![web1, web2, db1, web3]),
        (Selector { machine_ids: Some(vec![web3, web1]), ..Default::default() }, vec![web1, web3]),
        (Selector { labels: labels(&[("env", "prod")]), ..Default::default() }, vec![web1, db1, web3]),
        (
            Selector { labels: labels(&[("env", "prod"), ("tier", "web")]), ..Default::default() },
            vec![web1, web3],
        ),
        (Selector { regions: regions(&["eastus"]), ..Default::default() }, vec![db1, web3]),
        (
            Selector { regions: regions(&["eastus", "westeurope"]), ..Default::default() },
            vec![web1, web2, db1, web3],
        ),
        (
            Selector {
                labels: labels(&[("tier", "web")]),
                regions: regions(&["westeurope"]),
                ..Default::default()
            },
            vec![web1, web2],
        ),
        (
            Selector {
                machine_ids: Some(vec![web1, web2, db1]),
                labels: labels(&[("env", "prod")]),
                regions: regions(&["eastus"]),
            },
            vec![db1],
        ),
        (
            Selector { machine_ids: Some(vec![web1]), regions: regions(&["eastus"]), ..Default::default() },
            vec![],
        ),
        (Selector { labels: labels(&[("env", "dev")]), ..Default::default() }, vec![]),
        (Selector { machine_ids: Some(vec![Uuid::now_v7()]), ..Default::default() }, vec![]),
    ];
    for (selector, expected) in cases {
        let got = operations::select_machines(&db.pool, &selector, 100).await.unwrap();
        assert_eq!(got, expected, "{selector:?}");
    }
    let first_two = operations::select_machines(&db.pool, &Selector::default(), 2).await.unwrap();
    assert_eq!(first_two, [web1, web2], "at most `limit`, in id order");

    let stranger = Uuid::now_v7();
    assert_eq!(operations::unknown_machines(&db.pool, &[web1, stranger, db1]).await.unwrap(), [stranger]);
    assert!(operations::unknown_machines(&db.pool, &ids).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_operation_view_follows_its_jobs_from_queued_to_failed() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    let [ok, broken, last] = ids[..] else { panic!("three machines") };
    let mut conn = db.pool.acquire().await.unwrap();
    let op = new_operation(&mut conn).await;
    jobs::enqueue_assessments(&mut conn, Some(op), &ids, 0, t0()).await.unwrap();

    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!(view.status, OperationStatus::Queued);
    assert_eq!(view.machines, MachineCounts { total: 3, succeeded: 0, failed: 0, pending: 3 });
    assert!(view.results.iter().all(|r| r.state == JobState::Queued && r.finished_at.is_none()));
    assert_eq!((view.finished_at, view.results_truncated), (None, false));
    assert_eq!(operations::progress(&mut *conn, op).await.unwrap(), Some((3, 0, 0)));

    let running = jobs::claim(&mut *conn, ok, t0() + secs(1), TTL).await.unwrap().unwrap();
    assert_eq!(operations::get(&mut conn, op, 100).await.unwrap().status, OperationStatus::Running);
    assert_eq!(operations::progress(&mut *conn, op).await.unwrap(), Some((2, 1, 0)));
    jobs::complete(&mut conn, running.id, ok, &succeeded(&running), t0() + secs(10)).await.unwrap().unwrap();
    let failing = jobs::claim(&mut *conn, broken, t0() + secs(11), TTL).await.unwrap().unwrap();
    let failure = result(failing.lease.id, Outcome::Failed, Some("WU agent not running"));
    jobs::complete(&mut conn, failing.id, broken, &failure, t0() + secs(20)).await.unwrap().unwrap();

    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!(view.status, OperationStatus::Running, "one job is still queued");
    assert_eq!(view.machines, MachineCounts { total: 3, succeeded: 1, failed: 1, pending: 1 });
    let order: Vec<(Uuid, JobState)> = view.results.iter().map(|r| (r.machine_id, r.state)).collect();
    assert_eq!(order, [(broken, JobState::Failed), (ok, JobState::Succeeded), (last, JobState::Queued)]);
    assert_eq!(view.results[0].error.as_deref(), Some("WU agent not running"));
    assert_eq!(view.results[1].finished_at, Some(t0() + secs(10)));
    assert_eq!(view.finished_at, None, "not over yet");
    let head = operations::get(&mut conn, op, 1).await.unwrap();
    assert_eq!(head.results.iter().map(|r| r.machine_id).collect::<Vec<_>>(), [broken], "failures first");
    assert!(head.results_truncated);

    let final_job = jobs::claim(&mut *conn, last, t0() + secs(21), TTL).await.unwrap().unwrap();
    jobs::complete(&mut conn, final_job.id, last, &succeeded(&final_job), t0() + secs(30))
        .await
        .unwrap()
        .unwrap();
    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!(view.status, OperationStatus::Failed, "over, and one failed");
    assert_eq!(view.machines, MachineCounts { total: 3, succeeded: 2, failed: 1, pending: 0 });
    assert_eq!(view.finished_at, Some(t0() + secs(30)), "when its last job ended");
    assert_eq!(operations::progress(&mut *conn, op).await.unwrap(), Some((0, 0, 3)));
}

#[tokio::test]
async fn an_operation_whose_jobs_all_succeed_succeeded_and_an_unknown_one_is_not_found() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 2).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let op = new_operation(&mut conn).await;
    jobs::enqueue_assessments(&mut conn, Some(op), &ids, 0, t0()).await.unwrap();
    for (n, m) in ids.iter().enumerate() {
        let claimed = jobs::claim(&mut *conn, *m, t0(), TTL).await.unwrap().unwrap();
        let at = t0() + secs(10 * (n as i64 + 1));
        jobs::complete(&mut conn, claimed.id, *m, &succeeded(&claimed), at).await.unwrap().unwrap();
    }
    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!((view.status, view.finished_at), (OperationStatus::Succeeded, Some(t0() + secs(20))));
    assert_eq!(view.machines, MachineCounts { total: 2, succeeded: 2, failed: 0, pending: 0 });

    let unknown = Uuid::now_v7();
    assert!(matches!(operations::get(&mut conn, unknown, 10).await, Err(StoreError::NotFound)));
    assert_eq!(operations::progress(&mut *conn, unknown).await.unwrap(), None);
}

#[tokio::test]
async fn canceling_an_operation_ends_its_queued_jobs_and_leaves_running_ones_to_finish() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    let [held, done, waiting] = ids[..] else { panic!("three machines") };
    let mut conn = db.pool.acquire().await.unwrap();
    let op = new_operation(&mut conn).await;
    jobs::enqueue_assessments(&mut conn, Some(op), &ids, 0, t0()).await.unwrap();
    let holder = jobs::claim(&mut *conn, held, t0(), TTL).await.unwrap().unwrap();
    let finished = jobs::claim(&mut *conn, done, t0(), TTL).await.unwrap().unwrap();
    jobs::complete(&mut conn, finished.id, done, &succeeded(&finished), t0() + secs(5))
        .await
        .unwrap()
        .unwrap();

    let canceled = jobs::cancel_operation(&mut conn, op, t0() + secs(10)).await.unwrap();
    assert_eq!(canceled, jobs::Canceled { canceled: 1, running: 1, shared: 0 });
    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!((view.status, view.finished_at), (OperationStatus::Running, None));
    assert!(jobs::claim(&mut *conn, waiting, t0() + secs(11), TTL).await.unwrap().is_none());
    let late =
        jobs::complete(&mut conn, holder.id, held, &succeeded(&holder), t0() + secs(12)).await.unwrap();
    assert!(matches!(late, Ok(Completion::Recorded(_))), "the running job's result is kept");
    let view = operations::get(&mut conn, op, 100).await.unwrap();
    assert_eq!((view.status, view.finished_at), (OperationStatus::Canceled, Some(t0() + secs(12))));
    assert_eq!(view.machines, MachineCounts { total: 3, succeeded: 2, failed: 1, pending: 0 });
    let kept = jobs::get(&mut *conn, finished.id, done).await.unwrap().unwrap();
    assert_eq!(kept.state, JobState::Succeeded, "a finished job stays as it ended");
    assert_eq!(
        jobs::cancel_operation(&mut conn, op, t0() + secs(20)).await.unwrap(),
        jobs::Canceled::default()
    );
}

#[tokio::test]
async fn the_sql_operation_status_agrees_with_the_domain_rule() {
    let db = fresh_db().await;
    for counts in 0..(3i64.pow(6)) {
        let c: Vec<i64> = (0..6).map(|i| (counts / 3i64.pow(i)) % 3).collect();
        let sql: String = sqlx::query_scalar("select operation_status($1, $2, $3, $4, $5, $6)")
            .bind(c[0])
            .bind(c[1])
            .bind(c[2])
            .bind(c[3])
            .bind(c[4])
            .bind(c[5])
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let rule = OperationStatus::from_counts(&hotpatch_domain::operation::StateCounts {
            queued: c[0],
            leased: c[1],
            succeeded: c[2],
            failed: c[3],
            canceled: c[4],
            expired: c[5],
        });
        assert_eq!(sql, <&'static str>::from(rule), "{c:?}");
    }
}

#[tokio::test]
async fn only_jobs_becoming_claimable_notify_claims_and_results_do_not() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 2).await;
    let (m, other) = (ids[0], ids[1]);
    let mut conn = db.pool.acquire().await.unwrap();
    let op = new_operation(&mut conn).await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen(JOB_CHANNEL).await.unwrap();
    jobs::enqueue_assessments(&mut conn, Some(op), &[m], 0, t0()).await.unwrap();
    assert_eq!(next_wakeup(&mut listener).await.payload(), m.to_string());

    let claimed = jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap();
    let done = jobs::complete(&mut conn, claimed.id, m, &succeeded(&claimed), t0() + secs(1)).await.unwrap();
    assert!(matches!(done, Ok(Completion::Recorded(_))));
    // Notifications arrive in commit order: had the claim or the result sent one, it would come first.
    jobs::enqueue_assessments(&mut conn, None, &[other], 0, t0()).await.unwrap();
    assert_eq!(next_wakeup(&mut listener).await.payload(), other.to_string());
}

async fn next_wakeup(listener: &mut PgListener) -> sqlx::postgres::PgNotification {
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a wake-up within 5 s")
        .unwrap()
}
