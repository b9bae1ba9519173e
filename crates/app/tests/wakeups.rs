//! This replica's wake-ups: the in-memory hub (waiters by key, everyone at once, unregistering)
//! and its LISTEN loop against a real PostgreSQL, which turns NOTIFYs into wake-ups of waiting
//! claims, token generations and dropped status answers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotpatch_app::wakeups::{Key, StatusSink, Wakeups};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::wakeup::{JOB_CHANNEL, STATUS_CHANNEL, TOKEN_CHANNEL};
use hotpatch_store::PgPool;
use uuid::Uuid;

#[tokio::test]
async fn a_wake_up_between_the_check_and_the_wait_is_not_lost() {
    let hub = Wakeups::new();
    let id = Uuid::now_v7();
    let sub = hub.subscribe(Key::Machine(id));
    let changed = sub.changed();
    hub.wake(Key::Machine(id));
    tokio::time::timeout(Duration::from_secs(1), changed.wait()).await.expect("woken");
}

#[tokio::test]
async fn waking_one_key_does_not_wake_another() {
    let hub = Wakeups::new();
    let a = hub.subscribe(Key::Machine(Uuid::now_v7()));
    let changed = a.changed();
    hub.wake(Key::Machine(Uuid::now_v7()));
    assert!(tokio::time::timeout(Duration::from_millis(50), changed.wait()).await.is_err());
}

#[tokio::test]
async fn the_last_subscription_dropped_unregisters_its_key() {
    let hub = Wakeups::new();
    let key = Key::Machine(Uuid::now_v7());
    let a = hub.subscribe(key);
    let b = hub.subscribe(key);
    drop(a);
    assert_eq!(hub.waiting(), 1);
    drop(b);
    assert_eq!(hub.waiting(), 0);
}

#[tokio::test]
async fn wake_all_wakes_every_key() {
    let hub = Wakeups::new();
    let a = hub.subscribe(Key::Machine(Uuid::now_v7()));
    let changed = a.changed();
    hub.wake_all();
    tokio::time::timeout(Duration::from_secs(1), changed.wait()).await.expect("woken");
}

/// Records what the LISTEN loop tells it.
#[derive(Default)]
struct Recorded {
    machines: Mutex<Vec<Vec<Uuid>>>,
}

impl StatusSink for Recorded {
    fn changed(&self, ids: &[Uuid]) {
        self.machines.lock().unwrap().push(ids.to_vec());
    }

    fn changed_all(&self) {}
}

async fn notify(pool: &PgPool, channel: &str, payload: &str) {
    sqlx::query("select pg_notify($1, $2)").bind(channel).bind(payload).execute(pool).await.unwrap();
}

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn notifications_wake_claims_bump_the_token_generation_and_reach_the_status_sink() {
    let db = fresh_db().await;
    let hub = Wakeups::new();
    let sink = Arc::new(Recorded::default());
    hub.set_status_sink(sink.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listening = tokio::spawn(hub.clone().run(db.pool.clone(), async {
        let _ = stopped.await;
    }));
    eventually("the LISTEN connection", || hub.is_listening()).await;

    let machine = Uuid::now_v7();
    let sub = hub.subscribe(Key::Machine(machine));
    let changed = sub.changed();
    notify(&db.pool, JOB_CHANNEL, &machine.to_string()).await;
    tokio::time::timeout(Duration::from_secs(5), changed.wait()).await.expect("the claim is woken");

    let generation = hub.token_generation();
    notify(&db.pool, TOKEN_CHANNEL, &Uuid::now_v7().to_string()).await;
    eventually("a new token generation", || hub.token_generation() != generation).await;

    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    notify(&db.pool, STATUS_CHANNEL, &format!("{a},{b}")).await;
    eventually("the status change", || sink.machines.lock().unwrap().contains(&vec![a, b])).await;

    stop.send(()).unwrap();
    listening.await.unwrap();
    assert!(!hub.is_listening(), "stopped");
}
