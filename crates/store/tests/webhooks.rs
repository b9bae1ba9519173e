//! The webhook delivery queue against a real PostgreSQL: fan-out of change-feed events into one
//! delivery per matching webhook and event, claims that never hand a delivery to two replicas,
//! leases that expire back into the queue, and results fenced by attempt.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::webhooks::{self, Attempt, NewWebhook};
use hotpatch_store::PgPool;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

async fn webhook(pool: &PgPool, types: &[&str]) -> Uuid {
    let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
    let id = Uuid::now_v7();
    let new = NewWebhook {
        id,
        url: "http://127.0.0.1:9/hook",
        event_types: &types,
        secret: "s",
        description: None,
        created_by: None,
    };
    webhooks::create(pool, &new, t0()).await.unwrap();
    id
}

/// Change-feed events written the way a client cannot: directly (the triggers are tested with
/// the feed).
async fn events(pool: &PgPool, kind: &str, n: i64) {
    sqlx::query(
        "insert into event (type, data) select $1, jsonb_build_object('n', g) from generate_series(1, $2) g",
    )
    .bind(kind)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

async fn fan_out(pool: &PgPool) -> Option<usize> {
    let mut tx = pool.begin().await.unwrap();
    let n = webhooks::fan_out(&mut tx, 1_000, 3, t0()).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn fan_out_makes_one_delivery_per_matching_webhook_and_event_and_never_repeats() {
    let db = fresh_db().await;
    let halted = webhook(&db.pool, &["rollout.halted"]).await;
    let both = webhook(&db.pool, &["rollout.halted", "agent.lost"]).await;
    events(&db.pool, "rollout.halted", 3).await;
    events(&db.pool, "agent.lost", 2).await;
    events(&db.pool, "operation.finished", 4).await;
    assert_eq!(fan_out(&db.pool).await, Some(9), "every event read");
    assert_eq!(webhooks::deliveries(&db.pool, halted, 100).await.unwrap().len(), 3);
    assert_eq!(webhooks::deliveries(&db.pool, both, 100).await.unwrap().len(), 5);
    assert_eq!(fan_out(&db.pool).await, Some(0), "the cursor moved past them");

    // A replica fanning out meanwhile holds the cursor: the other one skips its turn.
    let mut holder = db.pool.begin().await.unwrap();
    assert!(webhooks::fan_out(&mut holder, 1_000, 3, t0()).await.unwrap().is_some());
    assert_eq!(fan_out(&db.pool).await, None);
    holder.commit().await.unwrap();
}

#[tokio::test]
async fn concurrent_claims_never_hand_one_delivery_to_two_replicas() {
    let db = fresh_db().await;
    webhook(&db.pool, &["agent.lost"]).await;
    events(&db.pool, "agent.lost", 400).await;
    fan_out(&db.pool).await;
    let mut claimers = vec![];
    for _ in 0..8 {
        let pool = db.pool.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = vec![];
            loop {
                let got = webhooks::claim_due(&pool, t0(), t0() + TimeDelta::minutes(1), 7).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = vec![];
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!((claimed, all.len()), (400, 400), "each delivery claimed exactly once");
}

#[tokio::test]
async fn an_expired_lease_goes_back_to_the_queue_and_its_late_result_is_refused() {
    let db = fresh_db().await;
    let hook = webhook(&db.pool, &["agent.lost"]).await;
    events(&db.pool, "agent.lost", 1).await;
    fan_out(&db.pool).await;
    let lease = t0() + TimeDelta::seconds(40);
    let first = webhooks::claim_due(&db.pool, t0(), lease, 10).await.unwrap().remove(0);
    assert_eq!(first.attempt, 1);
    assert!(webhooks::claim_due(&db.pool, t0(), lease, 10).await.unwrap().is_empty(), "leased");

    assert_eq!(webhooks::reap_expired(&db.pool, lease - TimeDelta::seconds(1)).await.unwrap(), 0);
    assert_eq!(webhooks::reap_expired(&db.pool, lease).await.unwrap(), 1);
    let second =
        webhooks::claim_due(&db.pool, lease, lease + TimeDelta::seconds(40), 10).await.unwrap().remove(0);
    assert_eq!((second.id, second.attempt), (first.id, 2));

    // The first holder answers late: its attempt is not the delivery's any more.
    let late = Attempt::Delivered { status: 200 };
    assert!(!webhooks::finish(&db.pool, first.id, first.attempt, &late, lease).await.unwrap());
    let failed =
        Attempt::Failed { status: Some(503), error: "busy".into(), retry_at: lease + TimeDelta::seconds(10) };
    assert!(webhooks::finish(&db.pool, second.id, second.attempt, &failed, lease).await.unwrap());
    let log = webhooks::deliveries(&db.pool, hook, 10).await.unwrap();
    assert_eq!((log[0].state.as_str(), log[0].last_status), ("queued", Some(503)));
    assert_eq!(log[0].run_after, lease + TimeDelta::seconds(10));

    // The third and last attempt's lease expires too: failed.
    let at = lease + TimeDelta::seconds(10);
    let third = webhooks::claim_due(&db.pool, at, at + TimeDelta::seconds(1), 10).await.unwrap().remove(0);
    assert_eq!((third.attempt, third.max_attempts), (3, 3));
    assert_eq!(webhooks::reap_expired(&db.pool, at + TimeDelta::seconds(1)).await.unwrap(), 1);
    let log = webhooks::deliveries(&db.pool, hook, 10).await.unwrap();
    assert_eq!(log[0].state, "failed");
    assert!(log[0].finished_at.is_some());
}
