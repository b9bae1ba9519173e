//! The change feed's table against a real PostgreSQL (a fresh database per test): ids in commit
//! order, one `operation.finished` when the last jobs of an operation end in concurrent
//! transactions (or from the sweep when the commit-time check missed it), agents reported lost
//! once per silence and connected again, and retention.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use chrono::{NaiveDate, TimeDelta};
use hotpatch_domain::job::Inventory;
use hotpatch_store::agents::InventoryWrite;
use hotpatch_store::events::{self, Event, RETENTION};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::{agents, jobs, PgPool};
use support::{machine, machines, new_operation, succeeded, t0, TTL};
use uuid::Uuid;

async fn all(pool: &PgPool) -> Vec<Event> {
    events::after(pool, 0, None, None, 1_000).await.unwrap()
}

/// An "assess now" operation over `machines`, its jobs queued; its id.
async fn assess_operation(pool: &PgPool, machines: &[Uuid]) -> Uuid {
    let mut tx = pool.begin().await.unwrap();
    let op = new_operation(&mut tx, t0()).await;
    jobs::enqueue_assessments(&mut tx, Some(op), machines, 0, t0()).await.unwrap();
    tx.commit().await.unwrap();
    op
}

fn of_type<'a>(events: &'a [Event], kind: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.kind == kind).collect()
}

fn inventory() -> Inventory {
    Inventory {
        os_build: "20348.2700".parse().unwrap(),
        reboot_pending: false,
        installed_updates: vec![hotpatch_domain::job::InstalledUpdate {
            kb: "KB5034439".parse().unwrap(),
            title: None,
            classification: None,
            installed_on: NaiveDate::from_ymd_opt(2025, 5, 14).unwrap(),
            installed_by: None,
        }],
        available_updates: vec![],
    }
}

#[tokio::test]
async fn event_ids_follow_commit_order_not_write_order() {
    let db = fresh_db().await;
    let (first, second) = (machine(&db.pool).await, machine(&db.pool).await);
    let mut early = db.pool.begin().await.unwrap();
    let inventory = inventory();
    let write =
        InventoryWrite { inventory: &inventory, installed: Default::default(), recommended_pending: false };
    agents::record_inventory(&mut early, first, &write, t0(), t0() + TimeDelta::days(1)).await.unwrap();
    let mut late = db.pool.begin().await.unwrap();
    agents::record_inventory(&mut late, second, &write, t0(), t0() + TimeDelta::days(1)).await.unwrap();
    late.commit().await.unwrap();
    early.commit().await.unwrap();

    let status = all(&db.pool).await;
    let status = of_type(&status, "machine.status_changed");
    let order: Vec<_> = status.iter().map(|e| e.machine_id.unwrap()).collect();
    assert_eq!(order, vec![second, first], "the transaction that committed first has the smaller id");
    assert_eq!(status[0].data["at"], "2025-06-02T09:00:00Z");
}

#[tokio::test]
async fn the_last_jobs_of_an_operation_ending_in_concurrent_transactions_finish_it_once_with_the_sweep() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 8).await;
    let op = assess_operation(&db.pool, &ids).await;
    let mut claimed = vec![];
    for &m in &ids {
        claimed.push(jobs::claim(&db.pool, m, t0(), TTL).await.unwrap().unwrap());
    }

    // Every job ends in a transaction of its own, all written before any commits.
    let mut open = vec![];
    for (job, &m) in claimed.iter().zip(&ids) {
        let mut tx = db.pool.begin().await.unwrap();
        jobs::complete(&mut tx, job.id, m, &succeeded(job), t0()).await.unwrap().unwrap();
        open.push(tx);
    }
    let commits: Vec<_> = open.into_iter().map(|tx| tokio::spawn(tx.commit())).collect();
    for commit in commits {
        commit.await.unwrap().unwrap();
    }
    // Each commit may have seen others still running; the maintenance tick's sweep then writes it.
    sqlx::query(
        "insert into event (type, data, created_at) values ('agent.lost', '{}', now() - interval '1 minute')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    events::sweep_finished_operations(&db.pool, 100).await.unwrap();
    events::sweep_finished_operations(&db.pool, 100).await.unwrap();

    let events = all(&db.pool).await;
    let finished = of_type(&events, "operation.finished");
    assert_eq!(finished.len(), 1, "{events:?}");
    assert_eq!(finished[0].operation_id, Some(op));
    assert_eq!(finished[0].data["status"], "succeeded");
    assert_eq!(finished[0].data["machines"]["total"], 8);
}

#[tokio::test]
async fn the_sweep_finishes_an_operation_whose_commit_time_check_missed_it_once() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 2).await;
    let op = assess_operation(&db.pool, &ids).await;
    // Another event exists (the feed's start), then both jobs end unseen, as when the last two
    // results commit at the same instant and each sees the other still running.
    sqlx::query(
        "insert into event (type, data, created_at) values ('agent.lost', '{}', now() - interval '1 minute')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query("set session_replication_role = replica").execute(&mut *conn).await.unwrap();
    for &m in &ids {
        let job = jobs::claim(&mut *conn, m, t0(), TTL).await.unwrap().unwrap();
        jobs::complete(&mut conn, job.id, m, &succeeded(&job), t0()).await.unwrap().unwrap();
    }
    sqlx::query("set session_replication_role = origin").execute(&mut *conn).await.unwrap();
    assert!(of_type(&all(&db.pool).await, "operation.finished").is_empty(), "missed");

    assert_eq!(events::sweep_finished_operations(&db.pool, 100).await.unwrap(), 1);
    assert_eq!(events::sweep_finished_operations(&db.pool, 100).await.unwrap(), 0, "once");
    let events = all(&db.pool).await;
    let finished = of_type(&events, "operation.finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].operation_id, Some(op));
    assert_eq!(finished[0].data["machines"]["total"], 2);
}

#[tokio::test]
async fn an_operation_with_jobs_left_is_not_finished() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 2).await;
    assess_operation(&db.pool, &ids).await;
    let job = jobs::claim(&db.pool, ids[0], t0(), TTL).await.unwrap().unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    jobs::complete(&mut conn, job.id, ids[0], &succeeded(&job), t0()).await.unwrap().unwrap();
    assert!(of_type(&all(&db.pool).await, "operation.finished").is_empty());
}

#[tokio::test]
async fn a_silent_agent_is_reported_lost_once_then_connected_when_heard_again() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    agents::ensure(&db.pool, m, t0()).await.unwrap();
    agents::mark_seen(&db.pool, &[(m, t0())]).await.unwrap();
    let minutes = |n| t0() + TimeDelta::minutes(n);
    let silence = events::AGENT_SILENCE;
    // Marks within two minutes of each other are the same connection.
    agents::mark_seen(&db.pool, &[(m, minutes(1))]).await.unwrap();

    assert_eq!(
        events::report_lost_agents(&db.pool, minutes(2), silence, 100).await.unwrap(),
        0,
        "seen a minute ago"
    );
    assert_eq!(events::report_lost_agents(&db.pool, minutes(4), silence, 100).await.unwrap(), 1);
    assert_eq!(
        events::report_lost_agents(&db.pool, minutes(5), silence, 100).await.unwrap(),
        0,
        "once per silence"
    );
    agents::mark_seen(&db.pool, &[(m, minutes(6))]).await.unwrap();
    assert_eq!(events::report_lost_agents(&db.pool, minutes(7), silence, 100).await.unwrap(), 0);
    assert_eq!(
        events::report_lost_agents(&db.pool, minutes(9), silence, 100).await.unwrap(),
        1,
        "a new silence"
    );

    let kinds: Vec<String> = all(&db.pool).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["agent.connected", "agent.lost", "agent.connected", "agent.lost"]);
    let events = all(&db.pool).await;
    assert_eq!(events[1].machine_id, Some(m));
    assert_eq!(events[1].data["last_seen_at"], "2025-06-02T09:01:00Z");
    assert_eq!(events[1].data["at"], "2025-06-02T09:04:00Z");
}

#[tokio::test]
async fn an_agent_back_after_two_minutes_of_silence_is_connected_before_it_was_reported_lost() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    agents::ensure(&db.pool, m, t0()).await.unwrap();
    agents::mark_seen(&db.pool, &[(m, t0())]).await.unwrap();
    agents::mark_seen(&db.pool, &[(m, t0() + TimeDelta::minutes(3))]).await.unwrap();
    let kinds: Vec<String> = all(&db.pool).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["agent.connected", "agent.connected"]);
}

#[tokio::test]
async fn retention_deletes_events_older_than_it_and_keeps_the_rest() {
    let db = fresh_db().await;
    sqlx::query(
        "insert into event (type, data, created_at) values
             ('agent.lost', '{}', now() - interval '8 days'),
             ('agent.lost', '{}', now() - interval '7 days 1 minute'),
             ('agent.connected', '{}', now() - interval '6 days'),
             ('agent.connected', '{}', now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(events::delete_older_than(&db.pool, RETENTION, 1).await.unwrap(), 1, "at most the limit");
    assert_eq!(events::delete_older_than(&db.pool, RETENTION, 100).await.unwrap(), 1);
    assert_eq!(events::delete_older_than(&db.pool, RETENTION, 100).await.unwrap(), 0);
    let left: Vec<String> = all(&db.pool).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(left, ["agent.connected", "agent.connected"]);
}

#[tokio::test]
async fn reading_after_an_id_honours_the_bound_and_the_types() {
    let db = fresh_db().await;
    sqlx::query(
        "insert into event (type, data) values
             ('agent.lost', '{}'), ('agent.connected', '{}'), ('agent.lost', '{}'), ('agent.connected', '{}')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let ids: Vec<i64> = all(&db.pool).await.iter().map(|e| e.id).collect();
    let types = ["agent.lost".to_owned()];
    let page = events::after(&db.pool, ids[0], Some(ids[2]), Some(&types), 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[2]]);
    assert_eq!(events::last_id(&db.pool).await.unwrap(), ids[3]);
}
