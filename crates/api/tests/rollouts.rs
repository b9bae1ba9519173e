//! `/v1/rollouts`: preview, start, list, read, pause, resume, cancel.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Instant;

use common::{azure_2022, id_of, publish, with, ws2022, TestApp, ADMIN};
use serde_json::{json, Value};

/// `n` machines over westeurope, northeurope (geo-paired) and eastus, zones 1–2.
fn fleet(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                let region = ["westeurope", "northeurope", "eastus"][i % 3];
                with(
                    azure_2022(&format!("vm-{i:05}")),
                    json!({"region": region, "availability_zone": format!("{}", i / 3 % 2 + 1)}),
                )
            })
            .collect(),
    )
}

/// An app with a small fleet and a published January baseline; the baseline's id.
async fn fleet_and_release(n: usize) -> (TestApp, String) {
    let app = TestApp::new().await;
    app.post("/v1/machines/import", ADMIN, fleet(n)).await.ok(201);
    let release = publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    (app, release)
}

async fn rollout_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from rollout").fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_preview_over_three_regions_never_puts_a_geo_pair_in_one_wave_and_writes_nothing() {
    let (app, release) = fleet_and_release(12).await;
    let r = app.post("/v1/rollouts/preview", ADMIN, json!({"release_id": release})).await;
    let plan = r.ok(200);
    assert_eq!(plan["counts"]["selected"], 12, "{plan}");
    assert_eq!(plan["counts"]["planned"], 12, "{plan}");
    assert_eq!(plan["counts"]["unplanned"], 0);
    let waves = plan["waves"].as_array().unwrap();
    assert!(waves.len() >= 2, "{plan}");
    for w in waves {
        let regions: Vec<&str> =
            w["regions"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert!(
            !(regions.contains(&"westeurope") && regions.contains(&"northeurope")),
            "a geo-pair shares wave {}: {regions:?}",
            w["index"]
        );
    }
    let batches = plan["batches"].as_array().unwrap();
    let in_batches: u64 = batches.iter().map(|b| b["machine_count"].as_u64().unwrap()).sum();
    assert_eq!(in_batches, 12);
    let m = &batches[0]["machines"][0];
    assert_eq!(m["install"], "baseline");
    assert_eq!(m["reboot"], true);
    assert_eq!(m["timezone"], "Europe/Berlin");
    assert!(m["window_start_local"].as_str().unwrap().contains("T01:00:00+0"), "{m}");
    assert_eq!(plan["deadline"], "2025-02-13T18:00:00Z");
    assert_eq!(plan["overdue"], true, "January's deadline is long past");
    let reason = plan["overdue_reason"].as_str().unwrap();
    assert!(reason.contains("after the 30-day deadline, 2025-02-13 18:00 UTC): 12 machines"), "{reason}");
    assert_eq!(rollout_rows(&app).await, 0, "a preview writes nothing");

    let slim = app.post("/v1/rollouts/preview?machines=false", ADMIN, json!({"release_id": release})).await;
    let slim = slim.ok(200);
    assert!(slim["batches"][0].get("machines").is_none());
    assert!(slim.get("unplanned").is_none());
    assert_eq!(slim["counts"]["planned"], 12);
}

#[tokio::test]
async fn a_preview_from_a_given_start_plans_windows_after_it() {
    let (app, release) = fleet_and_release(3).await;
    let r = app
        .post(
            "/v1/rollouts/preview",
            ADMIN,
            json!({"release_id": release, "start": "2025-01-20T12:00:00Z",
                   "selector": {"regions": ["eastus"]}, "options": {"max_batch_percent": 50}}),
        )
        .await;
    let plan = r.ok(200);
    assert_eq!(plan["counts"]["planned"], 1, "{plan}");
    assert_eq!(plan["batches"][0]["machines"][0]["window_start"], "2025-01-21T00:00:00Z");
    assert_eq!(plan["options"]["max_batch_percent"], 50);
    assert_eq!(plan["overdue"], false);
    assert_eq!(plan["overdue_reason"], Value::Null);
}

#[tokio::test]
async fn a_started_rollout_is_201_with_location_and_shows_every_machine_pending_in_batches() {
    let (app, release) = fleet_and_release(6).await;
    let r = app.post("/v1/rollouts", ADMIN, json!({"release_id": release})).await;
    let created = r.ok(201).clone();
    let id = id_of(&created);
    assert_eq!(r.headers["location"], format!("/v1/rollouts/{id}"));
    assert_eq!(created["state"], "running");
    assert_eq!(created["machine_count"], 6);

    let got = app.get(&format!("/v1/rollouts/{id}"), ADMIN).await;
    let got = got.ok(200);
    assert_eq!(got["counts"]["total"], 6);
    assert_eq!(got["counts"]["pending"], 6);
    assert_eq!(got["release_id"], release.as_str());
    assert_eq!(got["deadline"], "2025-02-13T18:00:00Z");
    let mut in_batches = 0;
    for w in got["waves"].as_array().unwrap() {
        for b in w["batches"].as_array().unwrap() {
            assert_eq!(b["counts"]["pending"], b["counts"]["total"]);
            in_batches += b["counts"]["total"].as_i64().unwrap();
        }
    }
    assert_eq!(in_batches, 6);
    assert!(got["batches_by_state"]["pending"].as_u64().unwrap() >= 1, "{got}");
}

#[tokio::test]
async fn rollouts_list_newest_first_a_page_at_a_time_and_by_state() {
    let (app, release) = fleet_and_release(3).await;
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(id_of(app.post("/v1/rollouts", ADMIN, json!({"release_id": release})).await.ok(201)));
    }
    app.post(&format!("/v1/rollouts/{}/cancel", ids[0]), ADMIN, json!({})).await.ok(200);
    let reader = app.token("reader").await;
    let first = app.get("/v1/rollouts?limit=2", &reader).await;
    let first = first.ok(200);
    let page: Vec<String> = first["items"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(page, vec![ids[2].clone(), ids[1].clone()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/v1/rollouts?limit=2&cursor={cursor}"), &reader).await;
    let second = second.ok(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(id_of(&second["items"][0]), ids[0]);
    assert!(second["next_cursor"].is_null());

    let canceled = app.get("/v1/rollouts?state=canceled", &reader).await;
    let canceled = canceled.ok(200);
    assert_eq!(canceled["items"].as_array().unwrap().len(), 1);
    assert_eq!(canceled["items"][0]["state"], "canceled");
    app.get("/v1/rollouts?state=sleeping", &reader).await.problem(400, "validation_failed");
}

#[tokio::test]
async fn pause_resume_and_cancel_move_the_rollout_and_refuse_other_states_with_409() {
    let (app, release) = fleet_and_release(3).await;
    let id = id_of(app.post("/v1/rollouts", ADMIN, json!({"release_id": release})).await.ok(201));
    let at = |action: &str| format!("/v1/rollouts/{id}/{action}");

    assert_eq!(app.post(&at("pause"), ADMIN, json!({})).await.ok(200)["state"], "paused");
    let p = app.post(&at("pause"), ADMIN, json!({})).await;
    assert!(p.problem(409, "conflict")["detail"].as_str().unwrap().contains("paused"));
    assert_eq!(app.post(&at("resume"), ADMIN, json!({})).await.ok(200)["state"], "running");
    let p = app.post(&at("resume"), ADMIN, json!({})).await;
    assert!(p.problem(409, "conflict")["detail"].as_str().unwrap().contains("running"));
    let canceled = app.post(&at("cancel"), ADMIN, json!({})).await;
    let canceled = canceled.ok(200);
    assert_eq!(canceled["state"], "canceled");
    assert!(canceled["finished_at"].is_string());
    assert_eq!(canceled["counts"]["canceled"], 3, "{canceled}");
    for action in ["pause", "resume", "cancel"] {
        let p = app.post(&at(action), ADMIN, json!({})).await;
        assert!(p.problem(409, "conflict")["detail"].as_str().unwrap().contains("canceled"), "{action}");
    }
    let unknown = "0190b7a0-0000-7000-8000-000000000000";
    for action in ["pause", "resume", "cancel"] {
        app.post(&format!("/v1/rollouts/{unknown}/{action}"), ADMIN, json!({}))
            .await
            .problem(404, "not_found");
    }
    app.get(&format!("/v1/rollouts/{unknown}"), ADMIN).await.problem(404, "not_found");
}

#[tokio::test]
async fn invalid_requests_are_refused_naming_the_field() {
    let (app, release) = fleet_and_release(3).await;
    for path in ["/v1/rollouts", "/v1/rollouts/preview"] {
        let p =
            app.post(path, ADMIN, json!({"release_id": release, "options": {"max_batch_percent": 0}})).await;
        assert_eq!(p.problem(422, "validation_failed")["errors"][0]["field"], "max_batch_percent", "{path}");
        let p = app
            .post(path, ADMIN, json!({"release_id": release, "options": {"failure_threshold_percent": 101}}))
            .await;
        assert_eq!(p.problem(422, "validation_failed")["errors"][0]["field"], "failure_threshold_percent");
        let p = app
            .post(path, ADMIN, json!({"release_id": release, "options": {"region_order": ["mars"]}}))
            .await;
        assert_eq!(p.problem(422, "validation_failed")["errors"][0]["field"], "region_order");
        let p =
            app.post(path, ADMIN, json!({"release_id": release, "selector": {"regions": ["mars"]}})).await;
        assert_eq!(p.problem(422, "validation_failed")["errors"][0]["field"], "selector");
        let unknown = json!({"release_id": "0190b7a0-0000-7000-8000-000000000000"});
        app.post(path, ADMIN, unknown).await.problem(404, "not_found");
    }
    let p = app
        .post("/v1/rollouts", ADMIN, json!({"release_id": release, "start": "2025-01-20T00:00:00Z"}))
        .await;
    p.problem(422, "validation_failed");
    assert_eq!(rollout_rows(&app).await, 0);
}

#[tokio::test]
async fn a_superseded_release_is_409() {
    let app = TestApp::new().await;
    app.post("/v1/machines/import", ADMIN, fleet(3)).await.ok(201);
    publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let hotpatch = publish(&app, ws2022("hotpatch", true, "2025-02", "KB5000002")).await;
    publish(&app, ws2022("baseline", false, "2025-02", "KB5000003")).await;
    app.post("/v1/rollouts", ADMIN, json!({"release_id": hotpatch})).await.problem(409, "conflict");
    app.post("/v1/rollouts/preview", ADMIN, json!({"release_id": hotpatch})).await.problem(409, "conflict");
}

#[tokio::test]
async fn readers_and_ci_read_rollouts_but_only_operators_start_and_steer_them() {
    let (app, release) = fleet_and_release(3).await;
    let id = id_of(app.post("/v1/rollouts", ADMIN, json!({"release_id": release})).await.ok(201));
    for role in ["reader", "ci"] {
        let token = app.token(role).await;
        let body = json!({"release_id": release});
        app.post("/v1/rollouts", &token, body.clone()).await.problem(403, "forbidden");
        app.post("/v1/rollouts/preview", &token, body).await.problem(403, "forbidden");
        app.post(&format!("/v1/rollouts/{id}/pause"), &token, json!({})).await.problem(403, "forbidden");
        app.get("/v1/rollouts", &token).await.ok(200);
        app.get(&format!("/v1/rollouts/{id}"), &token).await.ok(200);
    }
    let operator = app.token("operator").await;
    app.post(&format!("/v1/rollouts/{id}/pause"), &operator, json!({})).await.ok(200);
}

#[tokio::test]
async fn a_preview_of_ten_thousand_machines_is_timed() {
    let (app, release) = fleet_and_release(10_000).await;
    let started = Instant::now();
    let r = app.post("/v1/rollouts/preview?machines=false", ADMIN, json!({"release_id": release})).await;
    let elapsed = started.elapsed();
    assert_eq!(r.ok(200)["counts"]["planned"], 10_000);
    let started = Instant::now();
    let full = app.post("/v1/rollouts/preview", ADMIN, json!({"release_id": release})).await;
    let full_elapsed = started.elapsed();
    assert_eq!(full.ok(200)["counts"]["planned"], 10_000);
    eprintln!("preview of 10,000 machines: {elapsed:?} without machine lists, {full_elapsed:?} with them");
}

#[tokio::test]
#[ignore = "slow: 100,000 machines; run with --ignored to time"]
async fn a_preview_of_a_hundred_thousand_machines_is_timed() {
    let app = TestApp::new().await;
    let all = fleet(100_000);
    for chunk in all.as_array().unwrap().chunks(10_000) {
        app.post("/v1/machines/import", ADMIN, Value::Array(chunk.to_vec())).await.ok(201);
    }
    let release = publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let started = Instant::now();
    let r = app.post("/v1/rollouts/preview?machines=false", ADMIN, json!({"release_id": release})).await;
    let elapsed = started.elapsed();
    assert_eq!(r.ok(200)["counts"]["planned"], 100_000);
    eprintln!("preview of 100,000 machines: {elapsed:?} without machine lists");
}

#[tokio::test]
async fn a_rollout_or_an_assessment_over_the_max_selected_setting_is_refused_with_the_limit_named() {
    let (app, _) = TestApp::with_state(|s| {
        s.settings = std::sync::Arc::new(hotpatch_api::Settings {
            max_selected: 3,
            ..hotpatch_api::Settings::default()
        });
    })
    .await;
    app.post("/v1/machines/import", ADMIN, fleet(4)).await.ok(201);
    let release = publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let r = app.post("/v1/rollouts/preview?machines=false", ADMIN, json!({"release_id": release})).await;
    let p = r.problem(422, "validation_failed");
    assert_eq!(p["errors"][0]["field"], "selector", "{p}");
    assert_eq!(p["errors"][0]["message"], "names more than 3 machines; narrow it", "{p}");
    let r =
        app.post("/v1/assessments", ADMIN, json!({"regions": ["westeurope", "northeurope", "eastus"]})).await;
    assert_eq!(
        r.problem(422, "validation_failed")["errors"][0]["message"],
        "names more than 3 machines; narrow it"
    );
    // Three machines (two in westeurope, one in northeurope) are within the limit.
    let selector = json!({"regions": ["westeurope", "northeurope"]});
    let r = app
        .post(
            "/v1/rollouts/preview?machines=false",
            ADMIN,
            json!({"release_id": release, "selector": selector}),
        )
        .await;
    assert_eq!(r.ok(200)["counts"]["planned"], 3);
}

// Automatic rollouts: publishing a current release starts one.

/// An app on a manual clock a day after January 2025's patch Tuesday, with `automatic` rollouts
/// on or off, and five machines in westeurope: four automatic_by_platform, one patched by Update
/// Manager.
async fn automatic_fleet(automatic: bool) -> TestApp {
    let at = chrono::DateTime::parse_from_rfc3339("2025-01-15T12:00:00Z").unwrap().to_utc();
    let (app, _) = TestApp::with_state(|s| {
        s.clock = hotpatch_app::clock::Clock::manual(at);
        s.settings = std::sync::Arc::new(hotpatch_api::Settings {
            automatic_rollouts: automatic,
            ..hotpatch_api::Settings::default()
        });
    })
    .await;
    let mut machines: Vec<Value> = (0..4).map(|i| azure_2022(&format!("auto-{i}"))).collect();
    machines.push(with(azure_2022("manual-0"), json!({"patch_orchestration": "update_manager"})));
    app.post("/v1/machines/import", ADMIN, Value::Array(machines)).await.ok(201);
    app
}

#[tokio::test]
async fn publishing_a_current_release_starts_its_automatic_rollout_to_automatic_by_platform_machines() {
    let app = automatic_fleet(true).await;
    let published = app
        .post("/v1/releases", ADMIN, ws2022("baseline", true, "2025-01", "KB5000001"))
        .await
        .ok(201)
        .clone();
    let id = published["automatic_rollout_id"].as_str().expect("an automatic rollout").to_owned();
    let rollout = app.get(&format!("/v1/rollouts/{id}"), ADMIN).await.ok(200).clone();
    assert_eq!(rollout["automatic"], true, "{rollout}");
    assert_eq!(rollout["created_by"], Value::Null, "{rollout}");
    assert_eq!(rollout["release_id"], published["id"], "{rollout}");
    assert_eq!(rollout["state"], "running", "{rollout}");
    assert_eq!(rollout["machine_count"], 4, "not the Update Manager machine: {rollout}");
    // The release as listed later does not carry it.
    let listed =
        app.get(&format!("/v1/releases/{}", published["id"].as_str().unwrap()), ADMIN).await.ok(200).clone();
    assert!(listed.get("automatic_rollout_id").is_none(), "{listed}");
}

#[tokio::test]
async fn a_newer_release_replaces_the_unfinished_automatic_rollout_of_the_older_one() {
    let app = automatic_fleet(true).await;
    let jan = app
        .post("/v1/releases", ADMIN, ws2022("baseline", true, "2025-01", "KB5000001"))
        .await
        .ok(201)
        .clone();
    let jan_rollout = jan["automatic_rollout_id"].as_str().unwrap().to_owned();
    let mut feb = ws2022("hotpatch", true, "2025-02", "KB5000002");
    feb["released_at"] = json!("2025-01-15T13:00:00Z");
    let feb = app.post("/v1/releases", ADMIN, feb).await.ok(201).clone();
    let feb_rollout = feb["automatic_rollout_id"].as_str().expect("a rollout of February's").to_owned();
    assert_ne!(feb_rollout, jan_rollout);
    let old = app.get(&format!("/v1/rollouts/{jan_rollout}"), ADMIN).await.ok(200).clone();
    assert_eq!(old["state"], "canceled", "{old}");
    // The machines never got January's baseline: February's rollout brings it first.
    let new = app.get(&format!("/v1/rollouts/{feb_rollout}"), ADMIN).await.ok(200).clone();
    assert_eq!(new["state"], "running", "{new}");
    assert_eq!(new["machine_count"], 4, "{new}");
}

#[tokio::test]
async fn no_automatic_rollout_when_switched_off_for_an_old_release_or_a_back_filled_month() {
    // Switched off.
    let app = automatic_fleet(false).await;
    let r = app
        .post("/v1/releases", ADMIN, ws2022("baseline", true, "2025-01", "KB5000001"))
        .await
        .ok(201)
        .clone();
    assert!(r.get("automatic_rollout_id").is_none(), "{r}");
    assert_eq!(rollout_rows(&app).await, 0);

    // On, but the release is past its 30 days (an imported catalog), or older than the newest
    // of its OS (a back-filled month).
    let app = automatic_fleet(true).await;
    let r = app
        .post("/v1/releases", ADMIN, ws2022("baseline", true, "2024-10", "KB5000010"))
        .await
        .ok(201)
        .clone();
    assert!(r.get("automatic_rollout_id").is_none(), "three months old: {r}");
    let mut jan = ws2022("baseline", true, "2025-01", "KB5000001");
    jan["released_at"] = json!("2025-01-15T11:00:00Z");
    app.post("/v1/releases", ADMIN, jan).await.ok(201);
    assert_eq!(rollout_rows(&app).await, 1, "January's, the newest");
    let mut dec = ws2022("hotpatch", true, "2024-12", "KB5000012");
    dec["released_at"] = json!("2025-01-01T18:00:00Z");
    let r = app.post("/v1/releases", ADMIN, dec).await.ok(201).clone();
    assert!(r.get("automatic_rollout_id").is_none(), "December after January: {r}");
    assert_eq!(rollout_rows(&app).await, 1);
}
