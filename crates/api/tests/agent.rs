//! The agent protocol through the API (DESIGN §2 "Job queue", §3): claim, heartbeat and result
//! fenced by the lease, one machine's agent never reaching another's jobs, long-polls woken by
//! LISTEN/NOTIFY, and inventory and health reports becoming the machine's patch status.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use chrono::{DateTime, TimeDelta, Utc};
use common::{
    azure_2022, eventually, id_of, instant, inventory, listen, publish, release, ws2022, TestApp, ADMIN,
};
use hotpatch_app::clock::Clock;
use hotpatch_domain::job::RetryPolicy;
use hotpatch_store::jobs::{reap_expired, Reaped};
use serde_json::{json, Value};

/// A machine and its agent token.
async fn machine_with_agent(app: &TestApp, name: &str) -> (String, String) {
    let machine = app.machine_id(azure_2022(name)).await;
    let agent = app.agent_token(&machine).await;
    (machine, agent)
}

fn heartbeat_path(job: &Value) -> String {
    format!("/v1/agent/jobs/{}/heartbeat", id_of(job))
}

/// A whole second near now, for manual clocks.
fn whole_second_now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

/// Runs the lease reaper once at `now`, as the server's maintenance tick does.
async fn reap(app: &TestApp, now: DateTime<Utc>) -> Reaped {
    let mut conn = app.pool.acquire().await.unwrap();
    reap_expired(&mut conn, now, &RetryPolicy::default(), 1000, || 0.0).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// The whole cycle.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_assessment_runs_from_assess_now_through_the_agent_into_the_patch_status() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let operator = app.token("operator").await;
    let r =
        app.call(Method::POST, &format!("/v1/machines/{machine}/agent-token"), Some(&operator), None).await;
    let agent = r.ok(201)["token"].as_str().unwrap().to_owned();
    let ci = app.token("ci").await;

    let before = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(before["last_assessment_at"], Value::Null, "{before}");
    assert_eq!(before["agent"]["connected"], false, "the agent never called: {before}");
    assert_eq!(before["recommended_updates"], json!([]), "{before}");
    assert_eq!(before["update_compliance"], json!([]), "{before}");
    assert_eq!(before["os_build"], Value::Null, "an Azure VM registered without a build: {before}");

    let op = app.assess(&machine, &ci).await;
    let op_id = id_of(&op);
    assert_eq!(op["status"], "queued");

    let job = app.claim(&agent).await;
    assert_eq!(job["kind"], "assess");
    assert_eq!(job["machine_id"], machine.as_str());
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["id"], op["results"][0]["job_id"], "the operation's job");
    assert!(job["lease"]["id"].is_string(), "{job}");
    let first_expiry = instant(&job["lease"]["expires_at"]);
    assert!(first_expiry > Utc::now(), "a lease in the future: {job}");
    assert_eq!(app.operation(&op_id).await["status"], "running");

    let r = app.post(&heartbeat_path(&job), &agent, json!({"lease_id": job["lease"]["id"]})).await;
    let lease = &r.ok(200)["lease"];
    assert_eq!(lease["id"], job["lease"]["id"], "the same lease, extended");
    assert!(instant(&lease["expires_at"]) >= first_expiry, "{lease} ends before {first_expiry}");

    let r = app.post("/v1/agent/inventory", &agent, inventory()).await;
    assert_eq!(r.status, 204, "{}", r.body);

    let done = app.report(&agent, &job, "succeeded", json!({})).await;
    assert_eq!(done.ok(200), &json!({"id": job["id"], "state": "succeeded", "recorded": true}));
    let again = app.report(&agent, &job, "succeeded", json!({})).await;
    assert_eq!(again.ok(200), &json!({"id": job["id"], "state": "succeeded", "recorded": false}));

    let op = app.operation(&op_id).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["machines"], json!({"total": 1, "succeeded": 1, "failed": 0, "pending": 0}));
    assert_eq!(op["results"][0]["state"], "succeeded");
    assert!(op["finished_at"].is_string(), "{op}");

    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    let assessed = instant(&status["last_assessment_at"]);
    assert!((Utc::now() - assessed).abs() < TimeDelta::minutes(1), "{status}");
    assert_eq!(status["os_build"], "20348.2227", "the build the agent reported");
    let kbs = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|u| u["kb"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(kbs(&status["recommended_updates"]), ["KB5040001", "KB5040002"], "critical and security");
    assert_eq!(kbs(&status["update_compliance"]), ["KB5040003", "KB5040004"], "driver and .NET");
    assert_eq!(
        status["recommended_updates"][1],
        json!({"kb": "KB5040002", "title": "Security fix", "classification": "security", "requires_reboot": true})
    );
    assert_eq!(status["agent"]["connected"], true, "{status}");
    assert!(status["agent"]["last_seen_at"].is_string(), "{status}");
}

#[tokio::test]
async fn the_pending_reboot_the_agent_reports_shows_in_the_patch_status() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let mut inv = inventory();
    inv["reboot_pending"] = json!(true);
    assert_eq!(app.post("/v1/agent/inventory", &agent, inv).await.status, 204);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["reboot_pending"], true, "{status}");

    assert_eq!(app.post("/v1/agent/inventory", &agent, inventory()).await.status, 204);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["reboot_pending"], false, "the next assessment replaces it: {status}");
}

#[tokio::test]
async fn an_inventory_listing_a_catalog_baseline_makes_it_the_machines_current_baseline() {
    let app = TestApp::new().await;
    let baseline = publish(&app, ws2022("baseline", true, "2025-01", "KB5034439")).await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, inventory()).await.status, 204);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["current_baseline"]["id"], baseline.as_str(), "{status}");
    assert_eq!(status["latest_installed"]["id"], baseline.as_str(), "{status}");

    // February's hotpatch installed too, and another OS's newer baseline listed: the hotpatch is
    // the latest install, the other OS's baseline is not this machine's.
    let hotpatch = publish(&app, ws2022("hotpatch", true, "2025-02", "KB5034440")).await;
    publish(&app, release("windows_server_2025", "baseline", true, "2025-04", "KB5034441")).await;
    let mut later = inventory();
    for kb in ["KB5034440", "KB5034441"] {
        later["installed_updates"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kb": kb, "classification": "security", "installed_on": "2025-03-14"}));
    }
    assert_eq!(app.post("/v1/agent/inventory", &agent, later).await.status, 204);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["current_baseline"]["id"], baseline.as_str(), "{status}");
    assert_eq!(status["latest_installed"]["id"], hotpatch.as_str(), "{status}");
}

// ---------------------------------------------------------------------------------------------
// One machine's agent never reaches another machine's jobs.
// ---------------------------------------------------------------------------------------------

/// Machines A and B with their agents, and an assessment queued for A: (A's agent, B's agent,
/// the operation).
async fn job_for_a(app: &TestApp) -> (String, String, Value) {
    let (a, agent_a) = machine_with_agent(app, "machine-a").await;
    let (_, agent_b) = machine_with_agent(app, "machine-b").await;
    let op = app.assess(&a, ADMIN).await;
    (agent_a, agent_b, op)
}

#[tokio::test]
async fn an_agent_cannot_claim_another_machines_job() {
    let app = TestApp::new().await;
    let (agent_a, agent_b, op) = job_for_a(&app).await;
    app.claim_nothing(&agent_b).await;
    let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=1", Some(&agent_b), None).await;
    assert_eq!(r.status, 204, "a waiting claim neither: {}", r.body);
    let job = app.claim(&agent_a).await;
    assert_eq!(job["id"], op["results"][0]["job_id"], "A still gets its job");
}

#[tokio::test]
async fn an_agent_heartbeating_another_machines_job_gets_404_and_the_lease_stays() {
    let app = TestApp::new().await;
    let (agent_a, agent_b, _) = job_for_a(&app).await;
    let job = app.claim(&agent_a).await;
    let lease = json!({"lease_id": job["lease"]["id"]});
    app.post(&heartbeat_path(&job), &agent_b, lease.clone()).await.problem(404, "not_found");
    let r = app.post(&heartbeat_path(&job), &agent_a, lease).await;
    assert_eq!(r.ok(200)["lease"]["id"], job["lease"]["id"], "A still holds it");
    let done = app.report(&agent_a, &job, "succeeded", json!({})).await;
    assert_eq!(done.ok(200)["recorded"], true);
}

#[tokio::test]
async fn an_agent_reporting_a_result_for_another_machines_job_gets_404_and_changes_nothing() {
    let app = TestApp::new().await;
    let (agent_a, agent_b, op) = job_for_a(&app).await;
    let job = app.claim(&agent_a).await;
    app.report(&agent_b, &job, "failed", json!({"error": "sabotage"})).await.problem(404, "not_found");
    let seen = app.operation(&id_of(&op)).await;
    assert_eq!(seen["status"], "running", "the job is still A's, leased: {seen}");
    assert_eq!(seen["results"][0]["state"], "leased");
    let done = app.report(&agent_a, &job, "succeeded", json!({})).await;
    assert_eq!(done.ok(200), &json!({"id": job["id"], "state": "succeeded", "recorded": true}));
}

#[tokio::test]
async fn heartbeat_and_result_for_a_job_that_does_not_exist_are_404() {
    let app = TestApp::new().await;
    let (_, agent) = machine_with_agent(&app, "web-1").await;
    let id = uuid::Uuid::now_v7();
    let lease = json!({"lease_id": uuid::Uuid::new_v4()});
    app.post(&format!("/v1/agent/jobs/{id}/heartbeat"), &agent, lease).await.problem(404, "not_found");
    let result = json!({"lease_id": uuid::Uuid::new_v4(), "outcome": "succeeded"});
    app.post(&format!("/v1/agent/jobs/{id}/result"), &agent, result).await.problem(404, "not_found");
}

#[tokio::test]
async fn an_agent_token_is_refused_on_the_human_endpoints_of_its_own_machine() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let op = app.assess(&machine, ADMIN).await;
    for (method, path) in [
        (Method::POST, format!("/v1/machines/{machine}/assess")),
        (Method::POST, "/v1/assessments".to_owned()),
        (Method::GET, format!("/v1/operations/{}", id_of(&op))),
        (Method::GET, format!("/v1/machines/{machine}/installed-updates")),
        (Method::GET, format!("/v1/machines/{machine}/update-history")),
        (Method::GET, format!("/v1/machines/{machine}/patch-status")),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let r = app.call(method.clone(), &path, Some(&agent), body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        r.problem(403, "forbidden");
    }
}

// ---------------------------------------------------------------------------------------------
// Leases: extended by heartbeats, lost when they expire.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_heartbeat_extends_the_lease_by_its_ttl_from_now() {
    let t0 = whole_second_now();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let ttl = state.settings.lease_ttl;
    assert_eq!(instant(&job["lease"]["expires_at"]), t0 + ttl);
    state.clock.advance(TimeDelta::seconds(90));
    let r = app.post(&heartbeat_path(&job), &agent, json!({"lease_id": job["lease"]["id"]})).await;
    assert_eq!(instant(&r.ok(200)["lease"]["expires_at"]), t0 + TimeDelta::seconds(90) + ttl);
    // Past the first expiry, the extended lease still holds: the reaper leaves it.
    state.clock.advance(ttl);
    assert_eq!(reap(&app, state.clock.now()).await, Reaped::default());
    let r = app.post(&heartbeat_path(&job), &agent, json!({"lease_id": job["lease"]["id"]})).await;
    r.ok(200);
}

#[tokio::test]
async fn a_stale_lease_gets_lease_lost_once_the_job_was_reclaimed() {
    let t0 = whole_second_now();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let op = app.assess(&machine, ADMIN).await;
    let old = app.claim(&agent).await;
    assert_eq!(old["attempt"], 1);

    // Before expiry the reaper leaves the lease alone.
    assert_eq!(reap(&app, state.clock.now()).await, Reaped::default());
    state.clock.advance(state.settings.lease_ttl + TimeDelta::seconds(1));
    let now = state.clock.now();
    assert_eq!(reap(&app, now).await, Reaped { requeued: 1, failed: 0 });

    // Re-queued with backoff (half of 5 s with no jitter): not claimable yet.
    app.claim_nothing(&agent).await;
    let r = app.post(&heartbeat_path(&old), &agent, json!({"lease_id": old["lease"]["id"]})).await;
    r.problem(409, "lease_lost");
    state.clock.advance(TimeDelta::seconds(3));
    let new = app.claim(&agent).await;
    assert_eq!(new["id"], old["id"], "the same job");
    assert_eq!(new["attempt"], 2);
    assert_ne!(new["lease"]["id"], old["lease"]["id"], "under a new lease");
    assert_eq!(instant(&new["lease"]["expires_at"]), state.clock.now() + state.settings.lease_ttl);

    let r = app.post(&heartbeat_path(&old), &agent, json!({"lease_id": old["lease"]["id"]})).await;
    r.problem(409, "lease_lost");
    app.report(&agent, &old, "succeeded", json!({})).await.problem(409, "lease_lost");
    let r = app.post(&heartbeat_path(&new), &agent, json!({"lease_id": new["lease"]["id"]})).await;
    r.ok(200);
    let seen = app.operation(&id_of(&op)).await;
    assert_eq!(seen["status"], "running", "the stale result changed nothing: {seen}");

    let done = app.report(&agent, &new, "succeeded", json!({})).await;
    assert_eq!(done.ok(200)["recorded"], true);
    app.report(&agent, &old, "succeeded", json!({})).await.problem(409, "lease_lost");
    assert_eq!(app.operation(&id_of(&op)).await["status"], "succeeded");
}

#[tokio::test]
async fn a_job_whose_lease_expires_on_its_last_attempt_fails_with_its_operation() {
    let t0 = whole_second_now();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let op = app.assess(&machine, ADMIN).await;
    for attempt in 1..=3 {
        let job = app.claim(&agent).await;
        assert_eq!(job["attempt"], attempt);
        state.clock.advance(state.settings.lease_ttl + TimeDelta::seconds(1));
        let reaped = reap(&app, state.clock.now()).await;
        let expected = if attempt < 3 { (1, 0) } else { (0, 1) };
        assert_eq!((reaped.requeued, reaped.failed), expected, "attempt {attempt}");
        state.clock.advance(TimeDelta::minutes(10));
    }
    app.claim_nothing(&agent).await;
    let seen = app.operation(&id_of(&op)).await;
    assert_eq!(seen["status"], "failed", "{seen}");
    assert_eq!(seen["machines"], json!({"total": 1, "succeeded": 0, "failed": 1, "pending": 0}));
    let error = seen["results"][0]["error"].as_str().unwrap();
    assert!(error.contains("lease expired"), "{error}");
}

#[tokio::test]
async fn a_result_sent_twice_is_recorded_once_but_a_different_second_result_is_refused() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let failed = json!({"error": "disk full"});
    assert_eq!(app.report(&agent, &job, "failed", failed.clone()).await.ok(200)["recorded"], true);
    let again = app.report(&agent, &job, "failed", failed).await;
    assert_eq!(again.ok(200), &json!({"id": job["id"], "state": "failed", "recorded": false}));
    let other = app.report(&agent, &job, "succeeded", json!({})).await;
    other.problem(409, "lease_lost");
}

// ---------------------------------------------------------------------------------------------
// Claims: validation and long-polls.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_claim_with_a_bad_wait_or_an_unknown_parameter_is_400_naming_it() {
    let app = TestApp::new().await;
    let (_, agent) = machine_with_agent(&app, "web-1").await;
    for (query, field) in [
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("wait=abc", "wait"),
        ("wait=", "wait"),
        ("wait=1.5", "wait"),
        ("timeout=5", "timeout"),
    ] {
        let r = app.call(Method::POST, &format!("/v1/agent/jobs/claim?{query}"), Some(&agent), None).await;
        let p = r.problem(400, "validation_failed");
        assert_eq!(p["errors"][0]["field"], field, "?{query}: {p}");
    }
    let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=0", Some(&agent), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = app.call(Method::POST, "/v1/agent/jobs/claim", Some(&agent), None).await;
    assert_eq!(r.status, 204, "wait defaults to 0: {}", r.body);
}

#[tokio::test]
async fn only_agent_tokens_may_claim() {
    let app = TestApp::new().await;
    let (machine, _) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let mut tokens = vec![("bootstrap admin".to_owned(), ADMIN.to_owned())];
    for role in ["admin", "operator", "ci", "reader"] {
        tokens.push((role.to_owned(), app.token(role).await));
    }
    for (role, token) in &tokens {
        let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=0", Some(token), None).await;
        assert_eq!(r.status, 403, "{role}: {}", r.body);
        r.problem(403, "forbidden");
    }
    let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=0", None, None).await;
    r.problem(401, "unauthorized");
    let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=0", Some("hp_not-a-token"), None).await;
    r.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_waiting_claim_with_no_job_answers_204_when_its_wait_ends() {
    let app = TestApp::new().await;
    let (_, agent) = machine_with_agent(&app, "web-1").await;
    let started = std::time::Instant::now();
    let r = app.call(Method::POST, "/v1/agent/jobs/claim?wait=1", Some(&agent), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}, before its wait");
    assert!(waited < Duration::from_secs(10), "answered after {waited:?}");
}

#[tokio::test]
async fn a_waiting_claim_answers_when_a_job_is_enqueued_woken_by_listen_notify() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let app = Arc::new(app);
    let (machine, agent) = machine_with_agent(&app, "web-1").await;

    let (stop, listener) = listen(&app, &state).await;

    let claiming = {
        let (app, agent) = (app.clone(), agent.clone());
        tokio::spawn(async move {
            app.call(Method::POST, "/v1/agent/jobs/claim?wait=10", Some(&agent), None).await
        })
    };
    // The claim found nothing and waits on its machine's key.
    let wakeups = state.wakeups.clone();
    eventually("the claim to wait", Duration::from_secs(5), || {
        let n = wakeups.waiting();
        async move { n == 1 }
    })
    .await;
    assert!(!claiming.is_finished(), "the claim answered before any job existed");

    let ci = app.token("ci").await;
    let op = app.assess(&machine, &ci).await;
    // The timer fallback re-checks only every 15–20 s: an answer within 8 s came from the wake-up.
    let r = tokio::time::timeout(Duration::from_secs(8), claiming)
        .await
        .expect("the waiting claim answered before its wait ended")
        .unwrap();
    let job = r.ok(200);
    assert_eq!(job["id"], op["results"][0]["job_id"]);
    assert_eq!(job["attempt"], 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), listener).await.expect("the LISTEN loop stops").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Inventory and health reports.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_inventory_is_422_naming_the_field_and_records_nothing() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let change = |edit: &dyn Fn(&mut Value)| {
        let mut inv = inventory();
        edit(&mut inv);
        inv
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a bad installed KB",
            change(&|i| i["installed_updates"][0]["kb"] = json!("KB12")),
            "installed_updates[0].kb",
        ),
        (
            "a bad available KB",
            change(&|i| i["available_updates"][2]["kb"] = json!("driver")),
            "available_updates[2].kb",
        ),
        (
            "a bad classification",
            change(&|i| i["available_updates"][1]["classification"] = json!("cosmetic")),
            "available_updates[1].classification",
        ),
        (
            "a day that does not exist",
            change(&|i| i["installed_updates"][0]["installed_on"] = json!("2025-02-30")),
            "installed_updates[0].installed_on",
        ),
        (
            "a date in another format",
            change(&|i| i["installed_updates"][0]["installed_on"] = json!("14/01/2025")),
            "installed_updates[0].installed_on",
        ),
        (
            "an instant instead of a date",
            change(&|i| i["installed_updates"][0]["installed_on"] = json!("2025-01-14T10:00:00Z")),
            "installed_updates[0].installed_on",
        ),
        ("an unknown field", change(&|i| i["surprise"] = json!(1)), "surprise"),
        (
            "an unknown nested field",
            change(&|i| i["installed_updates"][0]["publisher"] = json!("Microsoft")),
            "installed_updates[0].publisher",
        ),
        ("a bad OS build", change(&|i| i["os_build"] = json!("latest")), "os_build"),
        ("no OS build", change(&|i| drop(i.as_object_mut().unwrap().remove("os_build"))), "os_build"),
        (
            "an available update without requires_reboot",
            change(&|i| drop(i["available_updates"][0].as_object_mut().unwrap().remove("requires_reboot"))),
            "available_updates[0].requires_reboot",
        ),
        ("reboot_pending as text", change(&|i| i["reboot_pending"] = json!("no")), "reboot_pending"),
    ];
    for (what, body, field) in cases {
        let r = app.post("/v1/agent/inventory", &agent, body).await;
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], field, "{what}: {p}");
    }
    let installed = app.get(&format!("/v1/machines/{machine}/installed-updates"), ADMIN).await;
    assert_eq!(
        installed.ok(200),
        &json!({"items": [], "assessed_at": null, "os_build": null}),
        "nothing was recorded"
    );
}

#[tokio::test]
async fn an_inventory_with_only_the_required_fields_is_accepted() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let minimal = json!({
        "os_build": "20348.2227", "reboot_pending": false,
        "installed_updates": [{"kb": "kb5034439", "installed_on": "2025-01-14"}]
    });
    assert_eq!(app.post("/v1/agent/inventory", &agent, minimal).await.status, 204);
    let installed = app.get(&format!("/v1/machines/{machine}/installed-updates"), ADMIN).await;
    let body = installed.ok(200);
    assert_eq!(body["items"], json!([{"kb": "KB5034439", "installed_on": "2025-01-14"}]));
}

#[tokio::test]
async fn an_inventory_or_health_report_that_is_not_json_is_415() {
    let app = TestApp::new().await;
    let (_, agent) = machine_with_agent(&app, "web-1").await;
    for path in ["/v1/agent/inventory", "/v1/agent/health"] {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {agent}"))
            .header("content-type", "text/plain")
            .body(axum::body::Body::from("healthy"))
            .unwrap();
        app.send(req).await.problem(415, "unsupported_media_type");
    }
}

#[tokio::test]
async fn an_invalid_health_report_is_422_naming_the_field() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    for (what, body, field) in [
        ("an unknown status", json!({"status": "sick"}), "status"),
        ("no status", json!({"checks": []}), "status"),
        ("an unknown field", json!({"status": "healthy", "uptime": 3}), "uptime"),
        (
            "a check with an unknown status",
            json!({"status": "healthy", "checks": [{"name": "iis", "status": "meh"}]}),
            "checks[0].status",
        ),
        (
            "a check without a name",
            json!({"status": "healthy", "checks": [{"status": "healthy"}]}),
            "checks[0].name",
        ),
    ] {
        let r = app.post("/v1/agent/health", &agent, body).await;
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], field, "{what}: {p}");
    }
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["health"], Value::Null, "nothing was recorded: {status}");
}

#[tokio::test]
async fn a_health_report_round_trips_into_the_patch_status() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let checks = json!([
        {"name": "iis", "status": "healthy"},
        {"name": "sql", "status": "unhealthy", "detail": "service stopped"}
    ]);
    let r = app.post("/v1/agent/health", &agent, json!({"status": "unhealthy", "checks": checks})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["health"]["status"], "unhealthy", "{status}");
    assert_eq!(status["health"]["checks"], checks);
    let reported = instant(&status["health"]["reported_at"]);
    assert!((Utc::now() - reported).abs() < TimeDelta::minutes(1), "{status}");
    assert_eq!(status["agent"]["connected"], true, "a health report is a sign of life");

    let r = app.post("/v1/agent/health", &agent, json!({"status": "healthy"})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let status = app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["health"]["status"], "healthy");
    assert_eq!(status["health"]["checks"], json!([]), "the last report replaces the previous one");
}

#[tokio::test]
async fn an_agent_that_stopped_calling_shows_as_disconnected() {
    let t0 = whole_second_now();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.claim_nothing(&agent).await;
    let path = format!("/v1/machines/{machine}/patch-status");
    let status = app.get(&path, ADMIN).await.ok(200).clone();
    assert_eq!(status["agent"], json!({"last_seen_at": status["agent"]["last_seen_at"], "connected": true}));
    assert_eq!(instant(&status["agent"]["last_seen_at"]), t0);
    state.clock.advance(TimeDelta::minutes(5));
    let status = app.get(&path, ADMIN).await.ok(200).clone();
    assert_eq!(status["agent"]["connected"], false, "{status}");
}

// ---------------------------------------------------------------------------------------------
// Heartbeat and result bodies.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_heartbeat_or_result_is_refused_naming_the_field() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let lease = job["lease"]["id"].clone();
    let heartbeat = heartbeat_path(&job);
    let result = format!("/v1/agent/jobs/{}/result", id_of(&job));
    for (path, body, field) in [
        (&heartbeat, json!({}), "lease_id"),
        (&heartbeat, json!({"lease_id": "lease-1"}), "lease_id"),
        (&heartbeat, json!({"lease_id": lease, "progress": 50}), "progress"),
        (&result, json!({"lease_id": lease}), "outcome"),
        (&result, json!({"outcome": "succeeded"}), "lease_id"),
        (&result, json!({"lease_id": lease, "outcome": "done"}), "outcome"),
        (&result, json!({"lease_id": lease, "outcome": "succeeded", "installed": ["KB1"]}), "installed[0]"),
        (&result, json!({"lease_id": lease, "outcome": "succeeded", "installed": "KB5040002"}), "installed"),
        (&result, json!({"lease_id": lease, "outcome": "succeeded", "rebooted": "yes"}), "rebooted"),
        (&result, json!({"lease_id": lease, "outcome": "failed", "exit_code": 5}), "exit_code"),
        (&result, json!({"lease_id": lease, "outcome": "failed", "error": 5}), "error"),
    ] {
        let r = app.post(path, &agent, body.clone()).await;
        assert_eq!(r.status, 422, "{path} {body}: {}", r.body);
        assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], field, "{path} {body}");
    }
    let r = app.post("/v1/agent/jobs/job-1/heartbeat", &agent, json!({"lease_id": lease})).await;
    r.problem(400, "validation_failed");
    let r = app.call(Method::POST, &heartbeat, Some(&agent), None).await;
    r.problem(415, "unsupported_media_type");
    // None of it touched the lease.
    let r = app.post(&heartbeat, &agent, json!({"lease_id": lease})).await;
    r.ok(200);
    assert_eq!(app.report(&agent, &job, "succeeded", json!({})).await.ok(200)["recorded"], true);
}

#[tokio::test]
async fn a_job_that_ended_refuses_heartbeats_with_lease_lost() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    let r = app.post(&heartbeat_path(&job), &agent, json!({"lease_id": job["lease"]["id"]})).await;
    r.problem(409, "lease_lost");
    app.claim_nothing(&agent).await;
}

#[tokio::test]
async fn a_result_error_longer_than_10000_characters_is_422() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let r = app.report(&agent, &job, "failed", json!({"error": "x".repeat(10_001)})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "error");
    let r = app.report(&agent, &job, "failed", json!({"error": "x".repeat(10_000)})).await;
    assert_eq!(r.ok(200)["state"], "failed");
}

#[tokio::test]
async fn a_result_error_of_10000_non_ascii_characters_is_accepted() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let error = "é".repeat(10_000);
    let r = app.report(&agent, &job, "failed", json!({"error": error})).await;
    assert_eq!(r.ok(200)["state"], "failed");
}

#[tokio::test]
async fn reports_over_their_size_limits_are_422_naming_the_list() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let update = json!({"kb": "KB5034439", "installed_on": "2025-01-14"});
    let mut inv = inventory();
    inv["installed_updates"] = Value::Array(vec![update; 5_001]);
    let r = app.post("/v1/agent/inventory", &agent, inv).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "installed_updates");
    let available =
        json!({"kb": "KB5040001", "title": "t", "classification": "critical", "requires_reboot": false});
    let mut inv = inventory();
    inv["available_updates"] = Value::Array(vec![available; 5_001]);
    let r = app.post("/v1/agent/inventory", &agent, inv).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "available_updates");
    let check = json!({"name": "c", "status": "healthy"});
    let r =
        app.post("/v1/agent/health", &agent, json!({"status": "healthy", "checks": vec![check; 101]})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "checks");
    let installed = app.get(&format!("/v1/machines/{machine}/installed-updates"), ADMIN).await;
    assert_eq!(installed.ok(200)["assessed_at"], Value::Null);
}

#[tokio::test]
async fn nul_characters_in_agent_reports_are_refused_as_4xx_never_5xx() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let mut inv = inventory();
    inv["installed_updates"][0]["title"] = json!("bad\u{0}title");
    let health =
        json!({"status": "unhealthy", "checks": [{"name": "x", "status": "unhealthy", "detail": "a\u{0}b"}]});
    for (what, r) in [
        ("inventory", app.post("/v1/agent/inventory", &agent, inv).await),
        ("health", app.post("/v1/agent/health", &agent, health).await),
        ("result", app.report(&agent, &job, "failed", json!({"error": "a\u{0}b"})).await),
    ] {
        assert!(r.status.is_client_error(), "{what}: {} {}", r.status, r.body);
    }
    assert_eq!(app.report(&agent, &job, "failed", json!({"error": "ab"})).await.ok(200)["recorded"], true);
}

// ---------------------------------------------------------------------------------------------
// Many agents at once: claims, heartbeats and results go to the database in batches.
// ---------------------------------------------------------------------------------------------

/// Sends all `calls` at once and returns their replies in the same order.
async fn all_at_once(app: &TestApp, calls: Vec<(String, String, Option<Value>)>) -> Vec<common::Reply> {
    let calls = calls.into_iter().map(|(path, token, body)| {
        let app = app.clone();
        tokio::spawn(async move { app.call(Method::POST, &path, Some(&token), body).await })
    });
    let mut replies = vec![];
    for call in calls.collect::<Vec<_>>() {
        replies.push(call.await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_calling_at_once_each_get_the_answer_for_their_own_machine_and_lease() {
    const AGENTS: usize = 48;
    let app = TestApp::new().await;
    let mut fleet = vec![];
    for i in 0..AGENTS {
        fleet.push(machine_with_agent(&app, &format!("web-{i}")).await);
    }
    let ids: Vec<&str> = fleet.iter().map(|(m, _)| m.as_str()).collect();
    let op = app.post("/v1/assessments", ADMIN, json!({"machine_ids": ids})).await.ok(202).clone();

    // Every agent claims twice at once: one claim gets its machine's job, the other nothing.
    let claims: Vec<_> = fleet
        .iter()
        .flat_map(|(_, agent)| {
            [0, 1].map(|_| ("/v1/agent/jobs/claim?wait=0".to_owned(), agent.clone(), None))
        })
        .collect();
    let replies = all_at_once(&app, claims).await;
    let mut jobs = vec![];
    for ((machine, _), pair) in fleet.iter().zip(replies.chunks(2)) {
        let mut statuses: Vec<u16> = pair.iter().map(|r| r.status.as_u16()).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 204], "one job per machine, claimed once: {:?}", pair[0].body);
        let job = pair.iter().find(|r| r.status == 200).unwrap().body.clone();
        assert_eq!(job["machine_id"], machine.as_str());
        jobs.push(job);
    }

    // Each agent heartbeats its job; at the same time another machine's agent tries it (404) and
    // a wrong lease is sent for it (409).
    let mut beats = vec![];
    for (i, job) in jobs.iter().enumerate() {
        let (agent, intruder) = (&fleet[i].1, &fleet[(i + 1) % AGENTS].1);
        let lease = json!({"lease_id": job["lease"]["id"]});
        beats.push((heartbeat_path(job), agent.clone(), Some(lease.clone())));
        beats.push((heartbeat_path(job), intruder.clone(), Some(lease)));
        beats.push((heartbeat_path(job), agent.clone(), Some(json!({"lease_id": uuid::Uuid::new_v4()}))));
    }
    let replies = all_at_once(&app, beats).await;
    for (job, three) in jobs.iter().zip(replies.chunks(3)) {
        assert_eq!(three[0].ok(200)["lease"], job["lease"], "a fresh lease is confirmed as it was");
        three[1].problem(404, "not_found");
        three[2].problem(409, "lease_lost");
    }

    // Results: every agent reports (odd machines fail), each result sent twice at once (one
    // records it, the other finds it recorded), while other machines' agents report it too (404).
    let mut results = vec![];
    for (i, job) in jobs.iter().enumerate() {
        let (agent, intruder) = (&fleet[i].1, &fleet[(i + 1) % AGENTS].1);
        let body = if i % 2 == 0 {
            json!({"lease_id": job["lease"]["id"], "outcome": "succeeded"})
        } else {
            json!({"lease_id": job["lease"]["id"], "outcome": "failed", "error": format!("failure {i}")})
        };
        let path = format!("/v1/agent/jobs/{}/result", id_of(job));
        results.push((path.clone(), agent.clone(), Some(body.clone())));
        results.push((path.clone(), agent.clone(), Some(body.clone())));
        results.push((path, intruder.clone(), Some(body)));
    }
    let replies = all_at_once(&app, results).await;
    for (i, three) in replies.chunks(3).enumerate() {
        let state = if i % 2 == 0 { "succeeded" } else { "failed" };
        let (a, b) = (three[0].ok(200), three[1].ok(200));
        assert_eq!((&a["state"], &b["state"]), (&json!(state), &json!(state)));
        let mut recorded = [a["recorded"].as_bool().unwrap(), b["recorded"].as_bool().unwrap()];
        recorded.sort();
        assert_eq!(recorded, [false, true], "recorded once: {a} {b}");
        three[2].problem(404, "not_found");
    }

    let seen = app.operation(&id_of(&op)).await;
    assert_eq!(seen["status"], "failed", "{seen}");
    assert_eq!(seen["machines"]["total"], AGENTS);
    assert_eq!(seen["machines"]["succeeded"], AGENTS / 2);
    assert_eq!(seen["machines"]["failed"], AGENTS / 2);
    for r in seen["results"].as_array().unwrap() {
        let i: usize = fleet.iter().position(|(m, _)| r["machine_id"] == m.as_str()).unwrap();
        if i % 2 == 1 {
            assert_eq!(r["error"], format!("failure {i}"), "each failure under its own job: {r}");
        }
    }
    // Two batches committing the last results at once may each see the other's job still open;
    // the server's maintenance tick then finishes the operation (the sweep, run here as it does).
    hotpatch_store::events::sweep_finished_operations(&app.pool, 100).await.unwrap();
    let finished: i64 = sqlx::query_scalar(
        "select count(*) from event where type = 'operation.finished' and operation_id = $1::text::uuid",
    )
    .bind(id_of(&op))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(finished, 1, "the operation finished once");

    // Every request went through a batch, and requests sent at once shared statements.
    let metrics = app.call(Method::GET, "/metrics", None, None).await.body.as_str().unwrap().to_owned();
    let count = |name: &str, request: &str| -> u64 {
        let prefix = format!("{name}{{request=\"{request}\"}} ");
        let line =
            metrics.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{prefix}"));
        line.parse().unwrap()
    };
    for (request, sent) in [("claim", 2 * AGENTS), ("heartbeat", 3 * AGENTS), ("result", 3 * AGENTS)] {
        assert_eq!(count("hotpatch_agent_batched_requests_total", request), sent as u64);
        let statements = count("hotpatch_agent_batches_total", request);
        assert!(
            statements < sent as u64,
            "{request}: {sent} requests sent at once took {statements} batches"
        );
    }
}
