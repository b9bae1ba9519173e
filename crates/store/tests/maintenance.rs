//! Maintenance configuration queries against a real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used, missing_docs)]

use hotpatch_store::maintenance::{self, ConfigurationWrite, ScopeMatch};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::{PgPool, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

async fn insert(pool: &PgPool, name: &str, ids: &[Uuid], labels: Value, regions: &[&str]) -> Uuid {
    let regions: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
    let body = json!({"name": name});
    let w = ConfigurationWrite {
        name,
        body: &body,
        scope_machine_ids: ids,
        scope_labels: &labels,
        scope_regions: &regions,
    };
    maintenance::insert(pool, Uuid::now_v7(), w).await.unwrap().id
}

async fn applies(pool: &PgPool, machine: Uuid, labels: Value, region: &str) -> Option<(String, ScopeMatch)> {
    maintenance::for_machine(pool, machine, &labels, region).await.unwrap().map(|(c, how)| (c.name, how))
}

#[tokio::test]
async fn the_configuration_of_a_machine_is_by_id_then_label_then_region_then_the_oldest() {
    let db = fresh_db().await;
    let machine = Uuid::now_v7();
    let labels = json!({"env": "prod", "team": "web"});
    assert_eq!(applies(&db.pool, machine, labels.clone(), "westeurope").await, None);
    insert(&db.pool, "region-old", &[], json!({}), &["westeurope"]).await;
    insert(&db.pool, "region-new", &[], json!({}), &["westeurope", "uksouth"]).await;
    assert_eq!(
        applies(&db.pool, machine, labels.clone(), "westeurope").await,
        Some(("region-old".into(), ScopeMatch::Region))
    );
    insert(&db.pool, "label-too-narrow", &[], json!({"env": "prod", "team": "db"}), &[]).await;
    insert(&db.pool, "label", &[], json!({"env": "prod"}), &[]).await;
    assert_eq!(
        applies(&db.pool, machine, labels.clone(), "westeurope").await,
        Some(("label".into(), ScopeMatch::Label))
    );
    insert(&db.pool, "named", &[Uuid::now_v7(), machine], json!({}), &[]).await;
    assert_eq!(
        applies(&db.pool, machine, labels, "westeurope").await,
        Some(("named".into(), ScopeMatch::MachineId))
    );
    // Another machine, no labels, in a region of the newer configuration only.
    assert_eq!(
        applies(&db.pool, Uuid::now_v7(), json!({}), "uksouth").await,
        Some(("region-new".into(), ScopeMatch::Region))
    );
}

#[tokio::test]
async fn a_configuration_is_updated_deleted_and_its_name_is_unique() {
    let db = fresh_db().await;
    let id = insert(&db.pool, "a", &[], json!({}), &["westeurope"]).await;
    let body = json!({"name": "b"});
    let w = ConfigurationWrite {
        name: "b",
        body: &body,
        scope_machine_ids: &[],
        scope_labels: &json!({}),
        scope_regions: &[],
    };
    let updated = maintenance::update(&db.pool, id, w).await.unwrap();
    assert_eq!((updated.name.as_str(), &updated.body), ("b", &body));
    assert!(updated.updated_at >= updated.created_at);
    assert_eq!(applies(&db.pool, Uuid::now_v7(), json!({}), "westeurope").await, None);
    insert(&db.pool, "c", &[], json!({}), &[]).await;
    let clash = ConfigurationWrite { name: "c", ..w };
    match maintenance::update(&db.pool, id, clash).await {
        Err(StoreError::Conflict { constraint, .. }) => {
            assert_eq!(constraint, "maintenance_configuration_name_key")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(maintenance::list(&db.pool, None, 10).await.unwrap().len(), 2);
    maintenance::delete(&db.pool, id).await.unwrap();
    assert!(matches!(maintenance::delete(&db.pool, id).await, Err(StoreError::NotFound)));
    assert!(matches!(maintenance::get(&db.pool, id).await, Err(StoreError::NotFound)));
}
