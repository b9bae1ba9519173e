//! `GET /v1/calendar` and the patch status of machines through the cycle, against a real PostgreSQL.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::{header, Method, Request};
use common::{azure_2022, jan_to_may, with, ws2022, TestApp, ADMIN};
use serde_json::{json, Value};

#[tokio::test]
async fn an_empty_catalog_projects_4_planned_baselines_and_8_hotpatches() {
    let app = TestApp::new().await;
    let r = app.get("/v1/calendar?os=windows_server_2025&year=2027", ADMIN).await;
    let cal = r.ok(200);
    assert_eq!((cal["os"].clone(), cal["year"].clone()), (json!("windows_server_2025"), json!(2027)));
    let months = cal["months"].as_array().unwrap();
    assert_eq!(months.len(), 12);
    assert_eq!(
        months[0],
        json!({"month": "2027-01", "kind": "baseline", "planned": true,
        "status": "projected", "release": null, "reboot_required": true})
    );
    assert_eq!(months[1]["kind"], "hotpatch");
    assert_eq!(months[1]["reboot_required"], false);
    let baselines: Vec<_> =
        months.iter().filter(|m| m["kind"] == "baseline").map(|m| m["month"].as_str().unwrap()).collect();
    assert_eq!(baselines, ["2027-01", "2027-04", "2027-07", "2027-10"]);
    assert!(months.iter().all(|m| m["status"] == "projected" && m["planned"] == true));
}

#[tokio::test]
async fn published_months_show_their_release_and_an_unplanned_baseline_replaces_the_hotpatch() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let unplanned = app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-05", "KB5000099")).await;
    let unplanned_id = unplanned.ok(201)["id"].clone();
    let cal = app.get("/v1/calendar?os=windows_server_2022&year=2025", ADMIN).await;
    let months = cal.ok(200)["months"].as_array().unwrap().clone();
    assert_eq!(months[0]["status"], "published");
    assert_eq!(months[0]["release"]["id"], json!(ids[0]));
    assert_eq!(months[0]["release"]["kb"], "KB5000000");
    assert_eq!(months[1]["release"]["id"], json!(ids[1]));
    let may = &months[4];
    assert_eq!((may["kind"].clone(), may["planned"].clone()), (json!("baseline"), json!(false)));
    assert_eq!((may["release"]["id"].clone(), may["reboot_required"].clone()), (unplanned_id, json!(true)));
    assert!(months[5..].iter().all(|m| m["status"] == "projected" && m["planned"] == true));
    // The other OS is untouched.
    let other = app.get("/v1/calendar?os=windows_server_2025&year=2025", ADMIN).await;
    assert!(other.ok(200)["months"].as_array().unwrap().iter().all(|m| m["status"] == "projected"));
}

#[tokio::test]
async fn the_calendar_requires_a_known_os_and_a_year() {
    let app = TestApp::new().await;
    for q in [
        "",
        "?os=windows_server_2022",
        "?year=2025",
        "?os=windows_2019&year=2025",
        "?os=windows_server_2022&year=1999",
        "?os=windows_server_2022&year=abc",
        "?os=windows_server_2022&year=2025&colour=red",
    ] {
        app.get(&format!("/v1/calendar{q}"), ADMIN).await.problem(400, "validation_failed");
    }
    let reader = app.token("reader").await;
    app.get("/v1/calendar?os=windows_server_2022&year=2025", &reader).await.ok(200);
}

async fn machine_id(app: &TestApp, spec: Value) -> String {
    app.machine(spec).await["id"].as_str().unwrap().to_owned()
}

async fn set_state(app: &TestApp, machine: &str, state: Value) -> common::Reply {
    app.call(Method::PUT, &format!("/v1/machines/{machine}/installed-state"), Some(ADMIN), Some(state)).await
}

async fn status_at(app: &TestApp, machine: &str, at: &str) -> Value {
    app.get(&format!("/v1/machines/{machine}/patch-status?at={at}"), ADMIN).await.ok(200).clone()
}

#[tokio::test]
async fn a_machine_still_on_januarys_baseline_in_may_needs_aprils_baseline_with_a_reboot() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    set_state(&app, &m, json!({"current_baseline_id": ids[0], "latest_installed_id": ids[2]})).await.ok(200);
    let s = status_at(&app, &m, "2025-05-20T12:00:00Z").await;
    assert_eq!(
        s["hotpatch"],
        json!({"enabled": true, "eligible": true, "preview": false, "status": "needs_baseline"})
    );
    assert_eq!(s["current_baseline"]["id"], json!(ids[0]));
    assert_eq!(s["latest_installed"]["kind"], "hotpatch");
    assert_eq!(s["cycle"]["month"], "2025-05");
    assert_eq!(s["cycle"]["kind"], "hotpatch");
    assert_eq!(s["cycle"]["needs_baseline"], true);
    assert_eq!(s["cycle"]["reboot_required"], true);
    assert_eq!(s["cycle"]["next_release"]["kind"], "baseline");
    assert_eq!(s["cycle"]["next_release"]["release"]["id"], json!(ids[3]));
}

#[tokio::test]
async fn a_machine_on_the_baseline_gets_the_hotpatch_without_a_reboot() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    set_state(&app, &m, json!({"current_baseline_id": ids[3], "latest_installed_id": ids[3]})).await.ok(200);
    let s = status_at(&app, &m, "2025-05-20T12:00:00Z").await;
    assert_eq!(s["hotpatch"]["status"], "enabled");
    assert_eq!(s["cycle"]["next_release"]["kind"], "hotpatch");
    assert_eq!(s["cycle"]["next_release"]["release"]["id"], json!(ids[4]));
    assert_eq!(s["cycle"]["reboot_required"], false);
}

#[tokio::test]
async fn an_unplanned_baseline_in_may_needs_a_reboot_even_after_mays_hotpatch() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    set_state(&app, &m, json!({"current_baseline_id": ids[3], "latest_installed_id": ids[4]})).await.ok(200);
    let unplanned = app.post("/v1/releases", ADMIN, ws2022("baseline", false, "2025-05", "KB5000099")).await;
    let s = status_at(&app, &m, "2025-05-20T12:00:00Z").await;
    assert_eq!(s["cycle"]["kind"], "baseline");
    assert_eq!(s["cycle"]["next_release"]["release"]["id"], unplanned.body["id"]);
    assert_eq!(s["cycle"]["reboot_required"], true);
    assert_eq!(s["hotpatch"]["status"], "needs_baseline");
}

#[tokio::test]
async fn a_machine_that_is_not_eligible_gets_the_cumulative_update_with_a_reboot_every_month() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let legacy = with(
        azure_2022("legacy"),
        json!({"hotpatch_enabled": false,
               "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter"}}),
    );
    let m = machine_id(&app, legacy).await;
    for (i, month) in ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"].iter().enumerate() {
        let s = status_at(&app, &m, &format!("{month}-20T12:00:00Z")).await;
        assert_eq!(s["hotpatch"]["status"], "not_eligible");
        assert_eq!(s["cycle"]["kind"], "cumulative_update", "{month}");
        assert_eq!(s["cycle"]["next_release"]["kind"], "cumulative_update");
        assert_eq!(s["cycle"]["next_release"]["release"]["id"], json!(ids[i]));
        assert_eq!(s["cycle"]["reboot_required"], true);
    }
}

#[tokio::test]
async fn after_installing_a_baseline_the_machine_is_reboot_pending_until_it_reboots() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    let r = set_state(
        &app,
        &m,
        json!({"current_baseline_id": ids[3], "latest_installed_id": ids[3], "reboot_pending": true}),
    )
    .await;
    assert_eq!(r.ok(200)["reboot_pending"], true);
    let s = status_at(&app, &m, "2025-05-20T12:00:00Z").await;
    assert_eq!(s["reboot_pending"], true);
    assert_eq!(s["cycle"]["reboot_required"], true);
    assert_eq!(s["cycle"]["next_release"], Value::Null, "nothing before the reboot");
    set_state(&app, &m, json!({"current_baseline_id": ids[3], "latest_installed_id": ids[3]})).await.ok(200);
    let s = status_at(&app, &m, "2025-05-20T12:00:00Z").await;
    assert_eq!(s["reboot_pending"], false);
    assert_eq!(s["cycle"]["next_release"]["kind"], "hotpatch");
}

#[tokio::test]
async fn the_patch_status_has_every_field_of_the_contract_and_answers_304_to_its_etag() {
    let app = TestApp::new().await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    let r = app.get(&format!("/v1/machines/{m}/patch-status"), ADMIN).await;
    let s = r.ok(200).clone();
    for field in [
        "machine_id",
        "hotpatch",
        "os_build",
        "current_baseline",
        "latest_installed",
        "cycle",
        "recommended_updates",
        "update_compliance",
        "reboot_pending",
        "last_assessment_at",
        "next_window",
        "agent",
        "health",
        "updated_at",
    ] {
        assert!(s.get(field).is_some(), "{field} in {s}");
    }
    assert_eq!((s["recommended_updates"].clone(), s["agent"].clone()), (json!([]), Value::Null));
    assert_eq!(s["cycle"]["next_release"], Value::Null, "an empty catalog offers nothing");
    let etag = r.headers[header::ETAG].to_str().unwrap().to_owned();
    let req = Request::builder()
        .uri(format!("/v1/machines/{m}/patch-status"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::IF_NONE_MATCH, &etag)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, 304);

    app.get(&format!("/v1/machines/{}/patch-status", uuid::Uuid::now_v7()), ADMIN)
        .await
        .problem(404, "not_found");
    app.get(&format!("/v1/machines/{m}/patch-status?at=may"), ADMIN).await.problem(400, "validation_failed");
}

#[tokio::test]
async fn the_installed_state_takes_only_releases_of_the_machines_os_and_a_baseline_as_baseline() {
    let app = TestApp::new().await;
    let ids = jan_to_may(&app).await;
    let m = machine_id(&app, azure_2022("web-1")).await;
    let r = set_state(&app, &m, json!({"current_baseline_id": ids[1]})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "current_baseline_id");
    let r = set_state(&app, &m, json!({"latest_installed_id": uuid::Uuid::now_v7()})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "latest_installed_id");
    let other_os = app
        .post(
            "/v1/releases",
            ADMIN,
            json!({"os": "windows_server_2025", "kind": "baseline", "month": "2025-01",
            "kb": "KB5900001", "build": "26100.2894", "released_at": "2025-01-14T18:00:00Z"}),
        )
        .await;
    set_state(&app, &m, json!({"current_baseline_id": other_os.body["id"]}))
        .await
        .problem(422, "validation_failed");
    let reader = app.token("reader").await;
    let r = app
        .call(Method::PUT, &format!("/v1/machines/{m}/installed-state"), Some(&reader), Some(json!({})))
        .await;
    r.problem(403, "forbidden");
    let missing = uuid::Uuid::now_v7();
    set_state(&app, &missing.to_string(), json!({})).await.problem(404, "not_found");
}
