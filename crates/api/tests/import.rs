//! `POST /v1/machines/import`: all or nothing, errors by item index.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{azure_2022, with, TestApp, ADMIN};
use serde_json::{json, Value};

fn fleet(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                let region = ["westeurope", "northeurope", "eastus"][i % 3];
                with(
                    azure_2022(&format!("vm-{i:05}")),
                    json!({"region": region,
                           "availability_zone": format!("{}", i % 3 + 1)}),
                )
            })
            .collect(),
    )
}

async fn count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from machine").fetch_one(&app.pool).await.unwrap()
}

/// The README's sample fleet (`deploy/fleet/fleet.json`) imports as it is, every machine eligible.
#[tokio::test]
async fn the_sample_fleet_imports_every_machine_eligible() {
    let app = TestApp::new().await;
    let sample: Value = serde_json::from_str(include_str!("../../../deploy/fleet/fleet.json")).unwrap();
    let body = app.post("/v1/machines/import", ADMIN, sample.clone()).await.ok(201).clone();
    assert_eq!(body["imported"], sample.as_array().unwrap().len());
    let page = app.get("/v1/machines?limit=100", ADMIN).await.ok(200).clone();
    for m in page["items"].as_array().unwrap() {
        assert_eq!(m["hotpatch_status"], "enabled", "{m}");
    }
}

#[tokio::test]
async fn an_import_of_ten_thousand_machines_registers_them_all() {
    let app = TestApp::new().await;
    let r = app.post("/v1/machines/import", ADMIN, fleet(10_000)).await;
    let body = r.ok(201);
    assert_eq!(body["imported"], 10_000);
    assert_eq!(body["items"][9_999]["index"], 9_999);
    assert_eq!(body["items"][9_999]["name"], "vm-09999");
    assert_eq!(count(&app).await, 10_000);
    let page = app.get("/v1/machines?region=eastus&limit=1000", ADMIN).await;
    assert_eq!(page.ok(200)["items"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn an_import_with_one_bad_item_imports_nothing_and_names_every_bad_index() {
    let app = TestApp::new().await;
    let mut items = fleet(50);
    items[3]["timezone"] = json!("Mars/Olympus");
    items[17]["image"]["sku"] = json!("2019-datacenter");
    items[42]["surprise"] = json!(true);
    items[44] = json!("not an object");
    let r = app.post("/v1/machines/import", ADMIN, items).await;
    let p = r.problem(422, "validation_failed");
    let errors = p["errors"].as_array().unwrap();
    let by_index: Vec<(u64, &str)> =
        errors.iter().map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap())).collect();
    assert_eq!(by_index, [(3, "timezone"), (17, "hotpatch_enabled"), (42, "surprise"), (44, "body")]);
    assert_eq!(errors[1]["code"], "unsupported_image");
    assert_eq!(p["detail"], "4 of 50 machines are invalid; nothing was imported");
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn names_must_be_unique_within_an_import_and_against_the_fleet() {
    let app = TestApp::new().await;
    app.machine(azure_2022("vm-00002")).await;
    let mut items = fleet(5);
    items[4]["name"] = json!("vm-00000");
    let r = app.post("/v1/machines/import", ADMIN, items).await;
    let p = r.problem(409, "conflict");
    let indexes: Vec<u64> =
        p["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [2, 4]);
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn an_import_is_limited_to_ten_thousand_and_needs_at_least_one() {
    let app = TestApp::new().await;
    app.post("/v1/machines/import", ADMIN, fleet(10_001)).await.problem(422, "validation_failed");
    app.post("/v1/machines/import", ADMIN, json!([])).await.problem(422, "validation_failed");
    assert_eq!(count(&app).await, 0);
}
