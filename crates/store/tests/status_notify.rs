//! The status notifications of migration 0009 against a real PostgreSQL (a fresh database per
//! test): a write of a machine's status inputs names the machine, a write of what every answer
//! depends on says `*`, large statements say `*`, and statements that change nothing say nothing.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use hotpatch_store::releases::{self, PatchState};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::wakeup::STATUS_CHANNEL;
use hotpatch_store::{agents, machines, PgPool};
use sqlx::postgres::PgListener;
use support::{machines as insert_machines, t0};

async fn listener(pool: &PgPool) -> PgListener {
    let mut l = PgListener::connect_with(pool).await.unwrap();
    l.listen(STATUS_CHANNEL).await.unwrap();
    l
}

/// The payloads received until none came for 300 ms.
async fn received(l: &mut PgListener) -> Vec<String> {
    let mut all = vec![];
    while let Ok(n) = tokio::time::timeout(Duration::from_millis(300), l.recv()).await {
        all.push(n.unwrap().payload().to_owned());
    }
    all
}

fn ids(payloads: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = payloads.iter().flat_map(|p| p.split(',').map(str::to_owned)).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_write_of_a_machines_inputs_names_the_machine_and_nothing_else() {
    let db = fresh_db().await;
    let ms = insert_machines(&db.pool, 2).await;
    let mut l = listener(&db.pool).await;
    let state = PatchState { reboot_pending: true, ..Default::default() };
    releases::set_patch_state(&db.pool, ms[0], &state).await.unwrap();
    assert_eq!(received(&mut l).await, vec![ms[0].to_string()], "installed state");
    agents::ensure(&db.pool, ms[1], t0()).await.unwrap();
    agents::mark_seen(&db.pool, &[(ms[1], t0())]).await.unwrap();
    assert_eq!(ids(&received(&mut l).await), vec![ms[1].to_string(), ms[1].to_string()], "agent, then seen");
    machines::delete(&db.pool, ms[0]).await.unwrap();
    assert!(ids(&received(&mut l).await).contains(&ms[0].to_string()), "deleted");
}

#[tokio::test]
async fn a_statement_over_many_machines_says_everything_and_one_that_changes_nothing_says_nothing() {
    let db = fresh_db().await;
    let ms = insert_machines(&db.pool, 2_500).await;
    let mut l = listener(&db.pool).await;
    let marks: Vec<_> = ms.iter().map(|&id| (id, t0())).collect();
    for &id in &ms[..300] {
        agents::ensure(&db.pool, id, t0()).await.unwrap();
    }
    let _ = received(&mut l).await;
    // 300 marks: two notifications of at most 200 ids, within the 8,000-byte payload.
    agents::mark_seen(&db.pool, &marks[..300]).await.unwrap();
    let got = received(&mut l).await;
    assert_eq!(got.len(), 2);
    assert_eq!(ids(&got).len(), 300);
    assert!(got.iter().all(|p| p.len() < 8_000));
    // Every machine at once: `*`.
    sqlx::query("update machine set updated_at = updated_at").execute(&db.pool).await.unwrap();
    assert_eq!(received(&mut l).await, vec!["*"]);
    // Nothing changed, nothing said.
    sqlx::query("update machine set updated_at = now() where false").execute(&db.pool).await.unwrap();
    sqlx::query("update rollout set state = 'paused' where false").execute(&db.pool).await.unwrap();
    assert_eq!(received(&mut l).await, Vec::<String>::new());
}

#[tokio::test]
async fn the_catalog_says_everything() {
    let db = fresh_db().await;
    let mut l = listener(&db.pool).await;
    sqlx::query("update status_epoch set catalog_version = catalog_version + 1")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(received(&mut l).await, vec!["*"]);
}
