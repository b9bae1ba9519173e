//! Maintenance configuration queries against a real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use hotpatch_domain::schedule::{applicable_configuration, Candidate, MaintenanceConfiguration};
use hotpatch_store::maintenance::{self, ScopeMatch};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::{PgPool, StoreError};
use serde_json::{json, Value};
use uuid::Uuid;

/// A valid configuration named `name` with this scope.
fn configuration(name: &str, ids: &[Uuid], labels: Value, regions: &[&str]) -> MaintenanceConfiguration {
    serde_json::from_value(json!({
        "name": name, "recurrence": {"frequency": "daily"}, "start_time": "02:00", "duration": "PT3H",
        "scope": {"machine_ids": ids, "labels": labels, "regions": regions},
    }))
    .unwrap()
}

async fn insert(pool: &PgPool, name: &str, ids: &[Uuid], labels: Value, regions: &[&str]) -> Uuid {
    maintenance::insert(pool, Uuid::now_v7(), &configuration(name, ids, labels, regions)).await.unwrap().id
}

async fn applies(pool: &PgPool, machine: Uuid, labels: Value, region: &str) -> Option<(String, ScopeMatch)> {
    let found = maintenance::for_machine(pool, machine, &labels, region).await.unwrap();
    found.map(|(c, how)| (c.configuration.name().to_owned(), how))
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
async fn the_sql_precedence_rule_agrees_with_the_domain_rule() {
    let db = fresh_db().await;
    let machines: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let label_sets =
        [json!({}), json!({"env": "prod"}), json!({"env": "prod", "team": "web"}), json!({"team": "db"})];
    let regions = ["westeurope", "uksouth"];
    // Every combination of scope parts, created in order so that age decides among equals.
    let mut stored = Vec::new();
    for (i, labels) in label_sets.iter().enumerate() {
        for (j, ids) in [&machines[..0], &machines[..1], &machines[1..3]].iter().enumerate() {
            let region: &[&str] = if (i + j) % 2 == 0 { &regions[..1] } else { &[] };
            let c = configuration(&format!("c{i}{j}"), ids, labels.clone(), region);
            stored.push(maintenance::insert(&db.pool, Uuid::now_v7(), &c).await.unwrap());
        }
    }
    for &machine in &machines {
        for labels in &label_sets {
            for region in regions {
                let sql = applies(&db.pool, machine, labels.clone(), region).await;
                let labels: BTreeMap<String, String> = serde_json::from_value(labels.clone()).unwrap();
                let candidates = stored.iter().map(|c| Candidate {
                    id: c.id,
                    created_at: c.created_at,
                    scope: c.configuration.scope(),
                });
                let rust = applicable_configuration(machine, &labels, region, candidates).map(|(c, how)| {
                    let name = stored.iter().find(|s| s.id == c.id).unwrap().configuration.name().to_owned();
                    (name, how)
                });
                assert_eq!(sql, rust, "machine {machine}, labels {labels:?}, region {region}");
            }
        }
    }
}

#[tokio::test]
async fn a_stored_body_that_no_longer_passes_the_checks_is_an_error_not_no_configuration() {
    let db = fresh_db().await;
    let machine = Uuid::now_v7();
    let id = insert(&db.pool, "nightly", &[machine], json!({}), &[]).await;
    sqlx::query(
        "update maintenance_configuration set body = jsonb_set(body, '{duration}', '\"PT5M\"') where id = $1",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    match maintenance::for_machine(&db.pool, machine, &json!({}), "westeurope").await {
        Err(StoreError::Decode(why)) => assert!(why.contains("duration"), "{why}"),
        other => panic!("a bad stored body must fail to load: {other:?}"),
    }
    assert!(matches!(maintenance::get(&db.pool, id).await, Err(StoreError::Decode(_))));
}

#[tokio::test]
async fn a_configuration_is_updated_deleted_and_its_name_is_unique() {
    let db = fresh_db().await;
    let id = insert(&db.pool, "a", &[], json!({}), &["westeurope"]).await;
    let b = configuration("b", &[], json!({}), &[]);
    let updated = maintenance::update(&db.pool, id, &b).await.unwrap();
    assert_eq!(updated.configuration, b);
    assert!(updated.updated_at >= updated.created_at);
    assert_eq!(applies(&db.pool, Uuid::now_v7(), json!({}), "westeurope").await, None);
    insert(&db.pool, "c", &[], json!({}), &[]).await;
    match maintenance::update(&db.pool, id, &configuration("c", &[], json!({}), &[])).await {
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
