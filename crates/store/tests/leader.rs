//! Singletons' advisory locks against a real PostgreSQL: one holder at a time, and a holder that
//! stops talking (a frozen replica, idle in its transaction) loses the lock by itself.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use hotpatch_store::leader::{self, Singleton, IDLE_TIMEOUT};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::StoreError;

#[tokio::test]
async fn one_replica_holds_a_singleton_at_a_time() {
    let db = fresh_db().await;
    let mut a = db.pool.begin().await.unwrap();
    assert!(leader::try_lock(&mut a, Singleton::RolloutDispatch).await.unwrap());
    let mut b = db.pool.begin().await.unwrap();
    assert!(!leader::try_lock(&mut b, Singleton::RolloutDispatch).await.unwrap());
    assert!(leader::try_lock(&mut b, Singleton::LeaseReaper).await.unwrap(), "another singleton is free");
    a.commit().await.unwrap();
    b.rollback().await.unwrap();
    let mut c = db.pool.begin().await.unwrap();
    assert!(leader::try_lock(&mut c, Singleton::RolloutDispatch).await.unwrap(), "free after the commit");
}

#[tokio::test]
async fn a_leader_transaction_has_the_idle_timeout_and_only_it() {
    let db = fresh_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    leader::try_lock(&mut tx, Singleton::LeaseReaper).await.unwrap();
    let inside: String = sqlx::query_scalar("select current_setting('idle_in_transaction_session_timeout')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, IDLE_TIMEOUT);
    tx.commit().await.unwrap();
    let after: String = sqlx::query_scalar("select current_setting('idle_in_transaction_session_timeout')")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_ne!(after, IDLE_TIMEOUT, "the setting is the transaction's, not the pooled connection's");
}

#[tokio::test]
async fn a_frozen_leader_loses_its_lock_by_itself() {
    let db = fresh_db().await;
    let mut frozen = db.pool.begin().await.unwrap();
    assert!(leader::try_lock(&mut frozen, Singleton::RolloutDispatch).await.unwrap());
    // The production timeout is seconds; the mechanism is the same with a shorter one.
    sqlx::query("set local idle_in_transaction_session_timeout = '300ms'")
        .execute(&mut *frozen)
        .await
        .unwrap();

    // The holder now says nothing: another replica takes the lock once PostgreSQL ends the session.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut other = db.pool.begin().await.unwrap();
        if leader::try_lock(&mut other, Singleton::RolloutDispatch).await.unwrap() {
            break;
        }
        other.rollback().await.unwrap();
        assert!(Instant::now() < deadline, "the lock outlived its idle holder");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The frozen replica, waking up, finds its session gone: a connection failure, not a result.
    let woke = sqlx::query("select 1").execute(&mut *frozen).await;
    let error = StoreError::from(woke.unwrap_err());
    assert!(error.is_connection_failure(), "{error:?}");
}
