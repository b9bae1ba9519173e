//! `/v1/region-pairs`: the geo-pairs rollouts keep apart, listed by readers, set and removed by
//! admins (issue 20).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{TestApp, ADMIN};
use serde_json::{json, Value};

fn has(list: &Value, a: &str, b: &str) -> bool {
    list["items"].as_array().unwrap().iter().any(|p| p == &json!({"region_a": a, "region_b": b}))
}

#[tokio::test]
async fn pairs_are_listed_set_once_in_either_order_and_removed() {
    let app = TestApp::new().await;
    let seeded = app.get("/v1/region-pairs", ADMIN).await.ok(200).clone();
    assert!(has(&seeded, "eastus", "westus"), "{seeded}");

    let r =
        app.call(axum::http::Method::PUT, "/v1/region-pairs/norwaywest/norwayeast", Some(ADMIN), None).await;
    assert_eq!(r.ok(201), &json!({"region_a": "norwayeast", "region_b": "norwaywest"}));
    let again =
        app.call(axum::http::Method::PUT, "/v1/region-pairs/norwayeast/norwaywest", Some(ADMIN), None).await;
    again.ok(200);
    assert!(has(app.get("/v1/region-pairs", ADMIN).await.ok(200), "norwayeast", "norwaywest"));

    app.delete("/v1/region-pairs/westus/eastus", ADMIN).await.ok(204);
    app.delete("/v1/region-pairs/westus/eastus", ADMIN).await.problem(404, "not_found");
    assert!(!has(app.get("/v1/region-pairs", ADMIN).await.ok(200), "eastus", "westus"));
}

#[tokio::test]
async fn readers_list_pairs_only_admins_change_them_and_names_are_checked() {
    let app = TestApp::new().await;
    let (reader, operator) = (app.token("reader").await, app.token("operator").await);
    app.get("/v1/region-pairs", &reader).await.ok(200);
    let put = |token: String, path: &'static str| {
        let app = app.clone();
        async move { app.call(axum::http::Method::PUT, path, Some(&token), None).await }
    };
    put(operator.clone(), "/v1/region-pairs/a/b").await.problem(403, "forbidden");
    app.delete("/v1/region-pairs/eastus/westus", &operator).await.problem(403, "forbidden");
    put(ADMIN.to_owned(), "/v1/region-pairs/eastus/eastus").await.problem(422, "validation_failed");
    put(ADMIN.to_owned(), "/v1/region-pairs/East_US/westus").await.problem(400, "validation_failed");
    app.delete("/v1/region-pairs/eastus/-x", ADMIN).await.problem(400, "validation_failed");
    assert!(has(app.get("/v1/region-pairs", ADMIN).await.ok(200), "eastus", "westus"), "nothing changed");
}
