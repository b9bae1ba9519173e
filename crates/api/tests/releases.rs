//! The release catalog through the API: every publishing rule, accepted and refused, against a
//! real PostgreSQL; the updates hotpatch does not cover.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{jan_to_may, publish, release, ws2022, TestApp, ADMIN};
use serde_json::{json, Value};

#[tokio::test]
async fn a_planned_baseline_in_a_baseline_month_is_published_with_location() {
    let app = TestApp::new().await;
    let r = app.post("/v1/releases", ADMIN, ws2022("baseline", true, "2025-01", "kb5034439")).await;
    let body = r.ok(201).clone();
    let id = body["id"].as_str().unwrap();
    assert_eq!(r.headers["location"], format!("/v1/releases/{id}"));
    assert_eq!(body["kb"], "KB5034439", "KB numbers are normalised");
    assert_eq!(body["month"], "2025-01");
    assert_eq!(body["reboot_required"], true);
    assert_eq!(body["superseded_by"], Value::Null);
    assert_eq!(app.get(&format!("/v1/releases/{id}"), ADMIN).await.ok(200), &body);
}

#[tokio::test]
async fn a_planned_baseline_outside_a_baseline_month_is_422_naming_the_rule() {
    let app = TestApp::new().await;
    let r = app.post("/v1/releases", ADMIN, ws2022("baseline", true, "2025-02", "KB5000001")).await;
    let detail = r.problem(422, "validation_failed")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("planned baselines only in baseline months"), "{detail}");
    assert!(detail.contains("01, 04, 07, 10"), "{detail}");
    assert_eq!(r.body["errors"][0]["field"], "month");
}

#[tokio::test]
async fn hotpatches_in_the_two_months_after_a_baseline_are_published_without_reboot() {
    let app = TestApp::new().await;
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    for (month, kb) in [("2025-02", "KB5000002"), ("2025-03", "KB5000003")] {
        let r = app.post("/v1/releases", ADMIN, ws2022("hotpatch", true, month, kb)).await;
        assert_eq!(r.ok(201)["reboot_required"], false);
    }
}

#[tokio::test]
async fn a_hotpatch_without_a_baseline_in_the_two_months_before_is_422_naming_the_rule() {
    let app = TestApp::new().await;
    let r = app.post("/v1/releases", ADMIN, ws2022("hotpatch", true, "2025-02", "KB5000002")).await;
    let detail = r.problem(422, "validation_failed")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("hotpatches only in the two months after a published baseline"), "{detail}");
}

#[tokio::test]
async fn a_hotpatch_in_a_baseline_month_is_422() {
    let app = TestApp::new().await;
    jan_to_may(&app).await;
    let r = app.post("/v1/releases", ADMIN, ws2022("hotpatch", true, "2025-07", "KB5000007")).await;
    assert!(r.problem(422, "validation_failed")["detail"].as_str().unwrap().contains("baseline month"));
}

#[tokio::test]
async fn a_baseline_of_another_os_does_not_open_hotpatch_months() {
    let app = TestApp::new().await;
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let r = app
        .post("/v1/releases", ADMIN, release("windows_server_2025", "hotpatch", true, "2025-02", "KB5000002"))
        .await;
    r.problem(422, "validation_failed");
}

#[tokio::test]
async fn an_unplanned_baseline_in_a_hotpatch_month_supersedes_that_months_hotpatch_which_stays_visible() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let may_hotpatch = &ids[4];
    let r = app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-05", "KB5000099")).await;
    let unplanned = r.ok(201).clone();
    assert_eq!(
        (unplanned["planned"].clone(), unplanned["reboot_required"].clone()),
        (json!(false), json!(true))
    );
    let old = app.get(&format!("/v1/releases/{may_hotpatch}"), ADMIN).await;
    assert_eq!(old.ok(200)["superseded_by"], unplanned["id"]);
    let list = app.get("/v1/releases?from=2025-05&to=2025-05", ADMIN).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 2, "both stay in the catalog");
}

#[tokio::test]
async fn an_unplanned_baseline_in_an_empty_hotpatch_month_is_published() {
    let app = TestApp::new().await;
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let r = app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-02", "KB5000002")).await;
    assert_eq!(r.ok(201)["planned"], false);
    // And the next month's hotpatch applies on it.
    app.post("/v1/releases", ADMIN, ws2022("hotpatch", true, "2025-03", "KB5000003")).await.ok(201);
}

#[tokio::test]
async fn an_unplanned_baseline_in_a_baseline_month_is_422() {
    let app = TestApp::new().await;
    let r = app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-04", "KB5000004")).await;
    assert!(r.problem(422, "validation_failed")["detail"].as_str().unwrap().contains("planned baseline"));
}

#[tokio::test]
async fn an_unplanned_hotpatch_is_422() {
    let app = TestApp::new().await;
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let r = app.post("/v1/releases", ADMIN, ws2022("hotpatch", false, "2025-02", "KB5000002")).await;
    let p = r.problem(422, "validation_failed");
    assert!(p["detail"].as_str().unwrap().contains("only baselines can be unplanned"));
    assert_eq!(p["errors"][0]["field"], "planned");
}

#[tokio::test]
async fn a_second_active_release_in_a_month_is_409_naming_the_rule() {
    let app = TestApp::new().await;
    jan_to_may(&app).await;
    for body in
        [ws2022("baseline", true, "2025-04", "KB5100004"), ws2022("hotpatch", true, "2025-05", "KB5100005")]
    {
        let r = app.post("/v1/releases", ADMIN, body).await;
        let detail = r.problem(409, "conflict")["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("one active release per os and month"), "{detail}");
    }
    // An unplanned baseline replaces a hotpatch once; a second one collides with the first.
    publish(&app, ws2022("baseline", false, "2025-05", "KB5100006")).await;
    app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-05", "KB5100007"))
        .await
        .problem(409, "conflict");
}

#[tokio::test]
async fn a_taken_kb_is_409_naming_the_rule_even_for_another_os() {
    let app = TestApp::new().await;
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let r = app
        .post("/v1/releases", ADMIN, release("windows_server_2025", "baseline", true, "2025-01", "KB5000001"))
        .await;
    assert!(r.problem(409, "conflict")["detail"].as_str().unwrap().contains("kb unique"));
}

#[tokio::test]
async fn malformed_releases_are_422_naming_the_field() {
    let app = TestApp::new().await;
    for (field, value) in [
        ("month", json!("2025-13")),
        ("kb", json!("5034")),
        ("kind", json!("cumulative")),
        ("build", json!("20348")),
        ("released_at", json!("yesterday")),
    ] {
        let mut body = ws2022("baseline", true, "2025-01", "KB5000001");
        body[field] = value;
        let r = app.post("/v1/releases", ADMIN, body).await;
        assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], field);
    }
    let mut extra = ws2022("baseline", true, "2025-01", "KB5000001");
    extra["superseded_by"] = json!(null);
    app.post("/v1/releases", ADMIN, extra).await.problem(422, "validation_failed");
}

#[tokio::test]
async fn readers_read_the_catalog_and_only_operators_publish() {
    let app = TestApp::new().await;
    let reader = app.token("reader").await;
    let operator = app.token("operator").await;
    app.post("/v1/releases", &reader, ws2022("baseline", true, "2025-01", "KB5000001"))
        .await
        .problem(403, "forbidden");
    app.post("/v1/releases", &operator, ws2022("baseline", true, "2025-01", "KB5000001")).await.ok(201);
    let list = app.get("/v1/releases", &reader).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);
    app.get(&format!("/v1/releases/{}", uuid::Uuid::now_v7()), &reader).await.problem(404, "not_found");
}

#[tokio::test]
async fn the_catalog_lists_by_os_and_kind_a_page_at_a_time() {
    let app = TestApp::new().await;
    jan_to_may(&app).await;
    publish(&app, release("windows_server_2025", "baseline", true, "2025-01", "KB5200001")).await;
    let items = |r: &common::Reply| r.ok(200)["items"].as_array().unwrap().len();
    assert_eq!(items(&app.get("/v1/releases?os=windows_server_2022&kind=baseline", ADMIN).await), 2);
    assert_eq!(items(&app.get("/v1/releases?os=windows_server_2025", ADMIN).await), 1);
    let first = app.get("/v1/releases?limit=4", ADMIN).await;
    assert_eq!(items(&first), 4);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app.get(&format!("/v1/releases?limit=4&cursor={cursor}"), ADMIN).await;
    assert_eq!(items(&rest), 2);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    app.get("/v1/releases?kind=rollup", ADMIN).await.problem(400, "validation_failed");
    app.get("/v1/releases?from=2025-1", ADMIN).await.problem(400, "validation_failed");
    app.get("/v1/releases?colour=red", ADMIN).await.problem(400, "validation_failed");
}

fn update(kb: &str, classification: &str) -> Value {
    json!({"kb": kb, "title": format!("{kb}: an update"), "classification": classification,
           "os": "windows_server_2022", "released_at": "2025-01-14T18:00:00Z"})
}

#[tokio::test]
async fn updates_hotpatch_does_not_cover_are_published_with_classification_and_reboot() {
    let app = TestApp::new().await;
    let r = app.post("/v1/updates", ADMIN, update("KB5300001", "dotnet")).await;
    let u = r.ok(201).clone();
    assert_eq!(r.headers["location"], format!("/v1/updates/{}", u["id"].as_str().unwrap()));
    assert_eq!((u["requires_reboot"].clone(), u["auto_installed"].clone()), (json!(true), json!(false)));
    let mut defs = update("KB5300002", "definition");
    defs["os"] = Value::Null;
    assert_eq!(app.post("/v1/updates", ADMIN, defs).await.ok(201)["requires_reboot"], false);
    let mut driver = update("KB5300003", "driver");
    driver["requires_reboot"] = json!(false);
    assert_eq!(app.post("/v1/updates", ADMIN, driver).await.ok(201)["requires_reboot"], false);

    let list = app.get("/v1/updates?classification=dotnet", ADMIN).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);
    let for_2025 = app.get("/v1/updates?os=windows_server_2025", ADMIN).await;
    assert_eq!(for_2025.ok(200)["items"].as_array().unwrap().len(), 1, "updates for every OS are listed");

    app.post("/v1/updates", ADMIN, update("KB5300001", "dotnet")).await.problem(409, "conflict");
    app.post("/v1/updates", ADMIN, update("KB5300004", "hotfix")).await.problem(422, "validation_failed");
    let mut blank = update("KB5300005", "tools");
    blank["title"] = json!(" ");
    app.post("/v1/updates", ADMIN, blank).await.problem(422, "validation_failed");
    let reader = app.token("reader").await;
    app.post("/v1/updates", &reader, update("KB5300006", "tools")).await.problem(403, "forbidden");
}

#[tokio::test]
async fn the_sample_catalog_imports_in_file_order() {
    let app = TestApp::new().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/catalog/sample.json");
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(sample["_sample"].as_str().unwrap().contains("NOT real"));
    for r in sample["releases"].as_array().unwrap() {
        app.post("/v1/releases", ADMIN, r.clone()).await.ok(201);
    }
    for u in sample["updates"].as_array().unwrap() {
        app.post("/v1/updates", ADMIN, u.clone()).await.ok(201);
    }
    let cal = app.get("/v1/calendar?os=windows_server_2022&year=2025", ADMIN).await;
    let months = cal.ok(200)["months"].as_array().unwrap().clone();
    assert!(months.iter().all(|m| m["status"] == "published"));
    assert_eq!(months[7]["planned"], false, "August's unplanned baseline replaced its hotpatch");
}
