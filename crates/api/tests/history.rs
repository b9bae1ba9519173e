//! What a machine has installed (its last assessment) and what was done to it (its jobs):
//! `GET /v1/machines/{id}/installed-updates` and `GET /v1/machines/{id}/update-history`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chrono::Utc;
use common::{azure_2022, id_of, instant, inventory, TestApp, ADMIN};
use hotpatch_domain::job::JobKind;
use hotpatch_store::jobs::{enqueue, NewJob};
use serde_json::{json, Value};

/// Enqueues an install job for the machine, as rollouts and "install now" will.
async fn enqueue_install(app: &TestApp, machine: &str) -> String {
    let job = NewJob {
        kind: JobKind::Install,
        machine_id: machine.parse().unwrap(),
        payload: json!({"kbs": ["KB5040002"], "reboot": "if_required"}),
        priority: 0,
        run_after: Utc::now(),
        max_attempts: 3,
        operation_id: None,
        rollout_id: None,
        now: Utc::now(),
    };
    enqueue(&app.pool, &job).await.unwrap().to_string()
}

fn history_path(machine: &str) -> String {
    format!("/v1/machines/{machine}/update-history")
}

// ---------------------------------------------------------------------------------------------
// Installed updates.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn installed_updates_are_empty_with_no_assessment_until_the_agent_reports_inventory() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/machines/{machine}/installed-updates");
    let reader = app.token("reader").await;
    assert_eq!(
        app.get(&path, &reader).await.ok(200),
        &json!({"items": [], "assessed_at": null, "os_build": null})
    );

    let agent = app.agent_token(&machine).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, inventory()).await.status, 204);
    let body = app.get(&path, &reader).await.ok(200).clone();
    assert_eq!(
        body["items"],
        json!([{"kb": "KB5034439", "title": "2025-01 Security Update", "classification": "security",
                "installed_on": "2025-01-14", "installed_by": "windows_update"}])
    );
    let assessed = instant(&body["assessed_at"]);
    assert!((Utc::now() - assessed).abs() < chrono::TimeDelta::minutes(1), "{body}");
    assert_eq!(body["os_build"], inventory()["os_build"], "the build it reported with them");

    // The next assessment replaces the list.
    let mut next = inventory();
    next["installed_updates"] = json!([
        {"kb": "KB5034439", "installed_on": "2025-01-14"},
        {"kb": "KB5040002", "classification": "security", "installed_on": "2025-02-11", "installed_by": "hotpatch"}
    ]);
    assert_eq!(app.post("/v1/agent/inventory", &agent, next).await.status, 204);
    let body = app.get(&path, &reader).await.ok(200).clone();
    let kbs: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|u| u["kb"].as_str().unwrap()).collect();
    assert_eq!(kbs, ["KB5034439", "KB5040002"]);
    assert!(instant(&body["assessed_at"]) >= assessed);
}

#[tokio::test]
async fn installed_updates_are_per_machine() {
    let app = TestApp::new().await;
    let a = app.machine_id(azure_2022("a")).await;
    let b = app.machine_id(azure_2022("b")).await;
    let agent_a = app.agent_token(&a).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent_a, inventory()).await.status, 204);
    let r = app.get(&format!("/v1/machines/{b}/installed-updates"), ADMIN).await;
    assert_eq!(r.ok(200), &json!({"items": [], "assessed_at": null, "os_build": null}));
}

#[tokio::test]
async fn installed_updates_of_an_unknown_machine_are_404() {
    let app = TestApp::new().await;
    let id = uuid::Uuid::now_v7();
    app.get(&format!("/v1/machines/{id}/installed-updates"), ADMIN).await.problem(404, "not_found");
    app.get("/v1/machines/web-1/installed-updates", ADMIN).await.problem(400, "validation_failed");
}

// ---------------------------------------------------------------------------------------------
// Update history.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_history_lists_the_machines_jobs_newest_first_with_their_outcome() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    let path = history_path(&machine);
    assert_eq!(app.get(&path, ADMIN).await.ok(200), &json!({"items": []}));

    // An assessment that succeeded.
    let assess_op = app.assess(&machine, ADMIN).await;
    let assess = app.claim(&agent).await;
    app.report(&agent, &assess, "succeeded", json!({})).await.ok(200);
    // An install that installed a KB and rebooted.
    let install_id = enqueue_install(&app, &machine).await;
    let install = app.claim(&agent).await;
    assert_eq!(id_of(&install), install_id);
    let installed = json!({"installed": ["KB5040002"], "rebooted": true, "reboot_pending": false});
    app.report(&agent, &install, "succeeded", installed).await.ok(200);
    // An assessment that failed.
    app.assess(&machine, ADMIN).await;
    let failed = app.claim(&agent).await;
    app.report(&agent, &failed, "failed", json!({"error": "WSUS unreachable"})).await.ok(200);
    // An assessment still queued.
    let queued_op = app.assess(&machine, ADMIN).await;

    let items = app.get(&path, ADMIN).await.ok(200)["items"].as_array().unwrap().clone();
    let ids: Vec<&Value> = items.iter().map(|i| &i["job_id"]).collect();
    assert_eq!(ids, [&queued_op["results"][0]["job_id"], &failed["id"], &install["id"], &assess["id"]]);

    let [queued, failed_entry, install_entry, assess_entry] = &items[..] else { unreachable!() };
    assert_eq!(queued["kind"], "assess");
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["attempt"], 0);
    assert_eq!(queued["finished_at"], Value::Null);
    assert_eq!(queued["operation_id"], queued_op["id"]);

    assert_eq!(failed_entry["state"], "failed");
    assert_eq!(failed_entry["error"], "WSUS unreachable");
    assert_eq!(failed_entry["installed"], json!([]));
    assert_eq!(failed_entry["rebooted"], false);

    assert_eq!(install_entry["kind"], "install");
    assert_eq!(install_entry["state"], "succeeded");
    assert_eq!(install_entry["attempt"], 1);
    assert_eq!(install_entry["installed"], json!(["KB5040002"]));
    assert_eq!(install_entry["rebooted"], true);
    assert_eq!(install_entry["error"], Value::Null);
    assert_eq!(install_entry["operation_id"], Value::Null);
    assert_eq!(install_entry["rollout_id"], Value::Null);

    assert_eq!(assess_entry["kind"], "assess");
    assert_eq!(assess_entry["state"], "succeeded");
    assert_eq!(assess_entry["installed"], json!([]));
    assert_eq!(assess_entry["rebooted"], false);
    assert_eq!(assess_entry["operation_id"], assess_op["id"]);
    let created = instant(&assess_entry["created_at"]);
    let finished = instant(&assess_entry["finished_at"]);
    assert!(finished >= created, "{assess_entry}");
    for entry in &items {
        for key in [
            "job_id",
            "kind",
            "state",
            "attempt",
            "installed",
            "rebooted",
            "error",
            "operation_id",
            "rollout_id",
            "created_at",
            "finished_at",
        ] {
            assert!(entry.get(key).is_some(), "{key} missing from {entry}");
        }
    }
}

#[tokio::test]
async fn update_history_is_per_machine() {
    let app = TestApp::new().await;
    let a = app.machine_id(azure_2022("a")).await;
    let b = app.machine_id(azure_2022("b")).await;
    app.assess(&a, ADMIN).await;
    assert_eq!(app.get(&history_path(&b), ADMIN).await.ok(200), &json!({"items": []}));
    assert_eq!(app.get(&history_path(&a), ADMIN).await.ok(200)["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn update_history_covers_the_last_30_days_unless_days_says_otherwise() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let old = app.assess(&machine, ADMIN).await["results"][0]["job_id"].as_str().unwrap().to_owned();
    let agent = app.agent_token(&machine).await;
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    sqlx::query("update job set created_at = now() - interval '40 days' where id = $1::uuid")
        .bind(&old)
        .execute(&app.pool)
        .await
        .unwrap();
    let recent = app.assess(&machine, ADMIN).await["results"][0]["job_id"].as_str().unwrap().to_owned();

    let ids = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|i| i["job_id"].as_str().unwrap().to_owned()).collect()
    };
    let path = history_path(&machine);
    assert_eq!(ids(app.get(&path, ADMIN).await.ok(200)), [recent.as_str()], "30 days by default");
    assert_eq!(ids(app.get(&format!("{path}?days=39"), ADMIN).await.ok(200)), [recent.as_str()]);
    assert_eq!(
        ids(app.get(&format!("{path}?days=41"), ADMIN).await.ok(200)),
        [recent.as_str(), old.as_str()]
    );
    assert_eq!(ids(app.get(&format!("{path}?days=1"), ADMIN).await.ok(200)), [recent.as_str()]);
    assert_eq!(ids(app.get(&format!("{path}?days=3650"), ADMIN).await.ok(200)).len(), 2);
}

#[tokio::test]
async fn update_history_with_a_bad_days_or_an_unknown_parameter_is_400() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = history_path(&machine);
    for (query, field) in [
        ("days=0", "days"),
        ("days=-1", "days"),
        ("days=abc", "days"),
        ("days=", "days"),
        ("days=1.5", "days"),
        ("days=3651", "days"),
        ("limit=5", "limit"),
    ] {
        let r = app.get(&format!("{path}?{query}"), ADMIN).await;
        assert_eq!(r.status, 400, "?{query}: {}", r.body);
        assert_eq!(r.problem(400, "validation_failed")["errors"][0]["field"], field, "?{query}");
    }
}

#[tokio::test]
async fn update_history_of_an_unknown_machine_is_404() {
    let app = TestApp::new().await;
    let id = uuid::Uuid::now_v7();
    app.get(&history_path(&id.to_string()), ADMIN).await.problem(404, "not_found");
    app.get("/v1/machines/web-1/update-history", ADMIN).await.problem(400, "validation_failed");
}

#[tokio::test]
async fn installed_updates_and_update_history_are_for_readers_and_up_not_agents() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    for path in [format!("/v1/machines/{machine}/installed-updates"), history_path(&machine)] {
        for role in ["reader", "ci", "operator", "admin"] {
            let token = app.token(role).await;
            app.get(&path, &token).await.ok(200);
        }
        app.get(&path, &agent).await.problem(403, "forbidden");
        app.call(axum::http::Method::GET, &path, None, None).await.problem(401, "unauthorized");
    }
}
