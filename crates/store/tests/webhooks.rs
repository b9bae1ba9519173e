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
                let got =
                    webhooks::claim_due(&pool, t0(), t0() + TimeDelta::minutes(1), 1_000, 7).await.unwrap();
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
    let first = webhooks::claim_due(&db.pool, t0(), lease, 100, 10).await.unwrap().remove(0);
    assert_eq!(first.attempt, 1);
    assert!(webhooks::claim_due(&db.pool, t0(), lease, 100, 10).await.unwrap().is_empty(), "leased");

    assert_eq!(webhooks::reap_expired(&db.pool, lease - TimeDelta::seconds(1)).await.unwrap(), 0);
    assert_eq!(webhooks::reap_expired(&db.pool, lease).await.unwrap(), 1);
    let second = webhooks::claim_due(&db.pool, lease, lease + TimeDelta::seconds(40), 100, 10)
        .await
        .unwrap()
        .remove(0);
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
    let third =
        webhooks::claim_due(&db.pool, at, at + TimeDelta::seconds(1), 100, 10).await.unwrap().remove(0);
    assert_eq!((third.attempt, third.max_attempts), (3, 3));
    assert_eq!(webhooks::reap_expired(&db.pool, at + TimeDelta::seconds(1)).await.unwrap(), 1);
    let log = webhooks::deliveries(&db.pool, hook, 10).await.unwrap();
    assert_eq!(log[0].state, "failed");
    assert!(log[0].finished_at.is_some());
}

#[tokio::test]
async fn a_claim_takes_at_most_so_many_deliveries_of_each_webhook_oldest_events_first() {
    let db = fresh_db().await;
    let busy = webhook(&db.pool, &["agent.lost"]).await;
    let quiet = webhook(&db.pool, &["rollout.halted"]).await;
    events(&db.pool, "agent.lost", 30).await;
    events(&db.pool, "rollout.halted", 2).await;
    fan_out(&db.pool).await;
    let got = webhooks::claim_due(&db.pool, t0(), t0() + TimeDelta::minutes(1), 5, 100).await.unwrap();
    let of = |w: Uuid| got.iter().filter(|c| c.webhook_id == w).map(|c| c.event_id).collect::<Vec<_>>();
    let busy_events = of(busy);
    assert_eq!(busy_events.len(), 5, "capped: {busy_events:?}");
    assert_eq!(of(quiet).len(), 2, "the quiet webhook is not crowded out");
    let mut sorted = busy_events.clone();
    sorted.sort();
    assert_eq!(busy_events.len(), sorted.len());
    assert_eq!(sorted[0], 1, "the oldest events first: {sorted:?}");
    assert_eq!(sorted[4], 5);

    // A delivery given back unsent is queued again without the attempt it was counted for.
    let c = got.iter().find(|c| c.webhook_id == quiet).unwrap();
    assert!(webhooks::release(&db.pool, c.id, c.attempt, t0()).await.unwrap());
    let log = webhooks::deliveries(&db.pool, quiet, 10).await.unwrap();
    let entry = log.iter().find(|d| d.id == c.id).unwrap();
    assert_eq!((entry.state.as_str(), entry.attempt), ("queued", 0));
}

#[tokio::test]
async fn a_disabled_webhook_gets_no_deliveries_until_enabled_with_a_clean_record() {
    let db = fresh_db().await;
    let hook = webhook(&db.pool, &["agent.lost"]).await;
    events(&db.pool, "agent.lost", 1).await;
    fan_out(&db.pool).await;
    for i in 1..=3 {
        let health =
            webhooks::record_outcome(&db.pool, hook, false, t0() + TimeDelta::hours(i)).await.unwrap();
        assert_eq!(health.consecutive_failures, i as i32);
        assert_eq!(health.failing_since, Some(t0() + TimeDelta::hours(1)), "the run's first failure");
    }
    assert!(webhooks::disable(&db.pool, hook, "gone", t0()).await.unwrap());
    assert!(!webhooks::disable(&db.pool, hook, "again", t0()).await.unwrap(), "already disabled");
    let w = webhooks::get(&db.pool, hook).await.unwrap();
    assert_eq!((w.disabled_at, w.disabled_reason.as_deref()), (Some(t0()), Some("gone")));

    let lease = t0() + TimeDelta::minutes(1);
    assert!(webhooks::claim_due(&db.pool, t0(), lease, 10, 10).await.unwrap().is_empty(), "queued one waits");
    events(&db.pool, "agent.lost", 1).await;
    fan_out(&db.pool).await;
    assert_eq!(webhooks::deliveries(&db.pool, hook, 10).await.unwrap().len(), 1, "no new delivery");

    let w = webhooks::enable(&db.pool, hook, t0()).await.unwrap();
    assert_eq!((w.disabled_at, w.disabled_reason), (None, None));
    assert_eq!(webhooks::claim_due(&db.pool, t0(), lease, 10, 10).await.unwrap().len(), 1);
    let health = webhooks::record_outcome(&db.pool, hook, false, t0()).await.unwrap();
    assert_eq!(health.consecutive_failures, 1, "the record was reset");
    let health = webhooks::record_outcome(&db.pool, hook, true, t0()).await.unwrap();
    assert_eq!((health.consecutive_failures, health.failing_since), (0, None));
    assert!(matches!(
        webhooks::enable(&db.pool, Uuid::now_v7(), t0()).await,
        Err(hotpatch_store::StoreError::NotFound)
    ));
}
