//! "Install updates now" and rollbacks (DESIGN §1, §3): 202 operations with warnings, the job
//! an agent claims with its payload, one disruptive job per machine, validation, idempotency,
//! rollback plans, roles, and what the update history shows of them.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::{HeaderValue, Method};
use chrono::Utc;
use common::{azure_2022, id_of, instant, inventory, publish, with, ws2022, Reply, TestApp, ADMIN};
use hotpatch_domain::job::JobKind;
use hotpatch_domain::payload::{InstallPayload, RebootSetting};
use hotpatch_store::jobs::{enqueue, NewJob};
use serde_json::{json, Value};

const KEY: &str = "Idempotency-Key";
const NOT_AVAILABILITY_FIRST: &str =
    "install now does not follow availability-first rollout: this machine is \
     patched at once, outside its maintenance window";

fn install_path(machine: &str) -> String {
    format!("/v1/machines/{machine}/install")
}

fn rollback_path(machine: &str) -> String {
    format!("/v1/machines/{machine}/rollback")
}

/// `POST /v1/machines/{id}/install` with a body (or none) and an optional idempotency key.
async fn install(app: &TestApp, machine: &str, token: &str, body: Option<Value>, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, HeaderValue)> =
        key.map(|k| (KEY, HeaderValue::from_str(k).unwrap())).into_iter().collect();
    app.call_with_headers(Method::POST, &install_path(machine), Some(token), &headers, body).await
}

/// `POST /v1/machines/{id}/rollback` without a body, with an optional idempotency key.
async fn rollback(app: &TestApp, machine: &str, token: &str, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, HeaderValue)> =
        key.map(|k| (KEY, HeaderValue::from_str(k).unwrap())).into_iter().collect();
    app.call_with_headers(Method::POST, &rollback_path(machine), Some(token), &headers, None).await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

fn warnings(op: &Value) -> Vec<String> {
    op["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

/// The machine's update history items.
async fn history(app: &TestApp, machine: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/machines/{machine}/update-history"), ADMIN).await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

/// A machine with an agent token.
async fn machine_with_agent(app: &TestApp, name: &str) -> (String, String) {
    let machine = app.machine_id(azure_2022(name)).await;
    let agent = app.agent_token(&machine).await;
    (machine, agent)
}

// ---------------------------------------------------------------------------------------------
// Install now, end to end.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn install_now_answers_202_with_warnings_and_the_agent_runs_the_job_to_the_end() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let operator = app.token("operator").await;
    let body = json!({
        "classifications": ["critical", "security"],
        "kb_include": ["KB5040004"],
        "kb_exclude": ["kb5040002"],
        "exclude_kbs_requiring_reboot": false,
        "maximum_duration": "PT1H",
        "reboot": "if_required",
    });
    let r = install(&app, &machine, &operator, Some(body), None).await;
    let op = r.ok(202).clone();
    let id = id_of(&op);
    assert_eq!(r.headers["location"], format!("/v1/operations/{id}"));
    assert_eq!(op["kind"], "install");
    assert_eq!(op["status"], "queued");
    assert_eq!(op["machines"], json!({"total": 1, "succeeded": 0, "failed": 0, "pending": 1}));
    let w = warnings(&op);
    assert_eq!(w[0], NOT_AVAILABILITY_FIRST, "{w:?}");
    assert!(w.iter().any(|w| w.contains("the machine may reboot")), "{w:?}");
    assert!(!w.iter().any(|w| w.contains("hotpatch is not enabled")), "hotpatch is on: {w:?}");

    // The agent gets the job with the shared payload, KBs normalised and defaults spelled out.
    let job = app.claim(&agent).await;
    assert_eq!(job["kind"], "install");
    assert_eq!(job["id"], op["results"][0]["job_id"]);
    assert_eq!(
        job["payload"],
        json!({"classifications": ["critical", "security"], "kb_include": ["KB5040004"],
               "kb_exclude": ["KB5040002"], "exclude_kbs_requiring_reboot": false,
               "maximum_duration": "PT1H", "reboot": "if_required"})
    );
    let payload: InstallPayload = serde_json::from_value(job["payload"].clone()).unwrap();
    assert_eq!(payload.reboot, RebootSetting::IfRequired);
    assert_eq!(app.operation(&id).await["status"], "running");

    let done = json!({"installed": ["KB5040001", "KB5040004"], "rebooted": false, "reboot_pending": false});
    app.report(&agent, &job, "succeeded", done).await.ok(200);
    let op = app.operation(&id).await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["machines"]["succeeded"], 1);
    assert!(op["finished_at"].is_string(), "{op}");

    let items = history(&app, &machine).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let entry = &items[0];
    assert_eq!(entry["kind"], "install");
    assert_eq!(entry["state"], "succeeded");
    assert_eq!(entry["installed"], json!(["KB5040001", "KB5040004"]));
    assert_eq!(entry["rebooted"], false);
    assert_eq!(entry["reboot_pending"], false);
    assert_eq!(entry["error"], Value::Null);
    assert_eq!(entry["operation_id"], id.as_str());
    assert_eq!(entry["rollout_id"], Value::Null);
    let (created, started, finished) =
        (instant(&entry["created_at"]), instant(&entry["started_at"]), instant(&entry["finished_at"]));
    assert!(created <= started && started <= finished, "{entry}");
}

#[tokio::test]
async fn install_now_with_no_body_installs_critical_and_security_within_two_hours() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    install(&app, &machine, ADMIN, None, None).await.ok(202);
    let job = app.claim(&agent).await;
    assert_eq!(
        job["payload"],
        json!({"classifications": ["critical", "security"], "kb_include": [], "kb_exclude": [],
               "exclude_kbs_requiring_reboot": false, "maximum_duration": "PT2H", "reboot": "if_required"})
    );
}

#[tokio::test]
async fn install_now_warns_about_reboots_only_when_the_machine_may_reboot_and_about_hotpatch_being_off() {
    let app = TestApp::new().await;
    let never = app.machine_id(azure_2022("never")).await;
    let op = install(&app, &never, ADMIN, Some(json!({"reboot": "never"})), None).await.ok(202).clone();
    let w = warnings(&op);
    assert!(w.contains(&NOT_AVAILABILITY_FIRST.to_owned()), "{w:?}");
    assert!(!w.iter().any(|w| w.contains("may reboot")), "{w:?}");

    let off = app.machine_id(with(azure_2022("off"), json!({"hotpatch_enabled": false}))).await;
    let op = install(&app, &off, ADMIN, None, None).await.ok(202).clone();
    let w = warnings(&op);
    assert!(w.contains(&"hotpatch is not enabled: installing security updates will need a reboot".to_owned()));
    assert!(w.iter().any(|w| w.contains("may reboot")), "{w:?}");
}

#[tokio::test]
async fn install_now_of_an_unknown_machine_is_404_and_leaves_nothing() {
    let app = TestApp::new().await;
    let id = uuid::Uuid::now_v7().to_string();
    install(&app, &id, ADMIN, None, None).await.problem(404, "not_found");
    rollback(&app, &id, ADMIN, None).await.problem(404, "not_found");
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
    install(&app, "web-1", ADMIN, None, None).await.problem(400, "validation_failed");
}

// ---------------------------------------------------------------------------------------------
// One disruptive job at a time.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_install_while_one_is_queued_or_running_is_409_naming_it() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let first = install(&app, &machine, ADMIN, None, None).await.ok(202).clone();
    let job_id = first["results"][0]["job_id"].as_str().unwrap().to_owned();

    let r = install(&app, &machine, ADMIN, None, None).await;
    let detail = r.problem(409, "conflict")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(&job_id) && detail.contains("install") && detail.contains("queued"), "{detail}");
    assert!(detail.contains(first["id"].as_str().unwrap()), "names the operation: {detail}");
    assert_eq!(count(&app, "select count(*) from operation").await, 1, "refused requests left nothing");
    assert_eq!(count(&app, "select count(*) from job").await, 1);

    // Assessments are not disruptive: they still queue.
    app.assess(&machine, ADMIN).await;

    let job = app.claim(&agent).await;
    assert_eq!(id_of(&job), job_id, "install now outranks the assessment");
    let r = install(&app, &machine, ADMIN, None, None).await;
    assert!(r.problem(409, "conflict")["detail"].as_str().unwrap().contains("running"));

    app.report(&agent, &job, "failed", json!({"error": "0x80070643"})).await.ok(200);
    assert_eq!(app.operation(&id_of(&first)).await["status"], "failed");
    install(&app, &machine, ADMIN, None, None).await.ok(202);
}

#[tokio::test]
async fn a_reboot_queued_by_someone_else_blocks_install_now_too() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let job = NewJob {
        kind: JobKind::Reboot,
        machine_id: machine.parse().unwrap(),
        payload: json!({}),
        priority: 0,
        run_after: Utc::now(),
        max_attempts: 3,
        operation_id: None,
        rollout_id: None,
        now: Utc::now(),
    };
    let id = enqueue(&app.pool, &job).await.unwrap();
    let r = install(&app, &machine, ADMIN, None, None).await;
    let detail = r.problem(409, "conflict")["detail"].as_str().unwrap();
    assert!(detail.contains(&id.to_string()) && detail.contains("reboot"), "{detail}");
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn install_with_a_bad_body_is_422_naming_every_bad_field() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"classifications": ["hotfix"]}), vec!["classifications[0]"]),
        (
            json!({"classifications": ["security", "Security", "drivers"]}),
            vec!["classifications[1]", "classifications[2]"],
        ),
        (json!({"classifications": []}), vec!["classifications"]),
        (json!({"classifications": "security"}), vec!["classifications"]),
        (json!({"kb_include": ["5040"]}), vec!["kb_include[0]"]),
        (json!({"kb_include": ["KB5040001", "KB-5040002"]}), vec!["kb_include[1]"]),
        (json!({"kb_exclude": ["KB504000112345"]}), vec!["kb_exclude[0]"]),
        (
            json!({"kb_include": ["KB5040001"], "kb_exclude": ["KB5040009", "kb5040001"]}),
            vec!["kb_exclude[1]"],
        ),
        (json!({"maximum_duration": "PT10M"}), vec!["maximum_duration"]),
        (json!({"maximum_duration": "PT6H30M"}), vec!["maximum_duration"]),
        (json!({"maximum_duration": "P1D"}), vec!["maximum_duration"]),
        (json!({"maximum_duration": "2 hours"}), vec!["maximum_duration"]),
        (json!({"maximum_duration": 7200}), vec!["maximum_duration"]),
        (json!({"reboot": "sometimes"}), vec!["reboot"]),
        (json!({"exclude_kbs_requiring_reboot": "yes"}), vec!["exclude_kbs_requiring_reboot"]),
        (json!({"kbs": ["KB5040001"]}), vec!["kbs"]),
        (
            json!({"classifications": ["x"], "kb_include": ["y"], "maximum_duration": "PT7H"}),
            vec!["classifications[0]", "kb_include[0]", "maximum_duration"],
        ),
    ];
    for (body, want) in cases {
        let r = install(&app, &machine, ADMIN, Some(body.clone()), None).await;
        let problem = r.problem(422, "validation_failed");
        let fields: Vec<&str> =
            problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, want, "{body}: {problem}");
        assert!(problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty())));
    }
    assert_eq!(count(&app, "select count(*) from operation").await, 0, "nothing was created");
    assert_eq!(count(&app, "select count(*) from job").await, 0);
}

#[tokio::test]
async fn install_accepts_the_whole_duration_range_and_only_kb_include_without_classifications() {
    let app = TestApp::new().await;
    for (i, body) in [
        json!({"maximum_duration": "PT30M"}),
        json!({"maximum_duration": "PT6H"}),
        json!({"maximum_duration": "PT1H30M", "reboot": "always"}),
        json!({"classifications": [], "kb_include": ["KB5040004"], "exclude_kbs_requiring_reboot": true}),
    ]
    .into_iter()
    .enumerate()
    {
        let machine = app.machine_id(azure_2022(&format!("web-{i}"))).await;
        install(&app, &machine, ADMIN, Some(body.clone()), None).await.ok(202);
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn install_now_with_the_same_idempotency_key_replays_the_operation_and_refuses_another_request() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let operator = app.token("operator").await;
    let first = install(&app, &machine, &operator, None, Some("deploy-42")).await;
    let op = first.ok(202).clone();

    // A retry (the machine is now busy with that very job) gets the same operation, not a 409;
    // the defaults spelled out are the same request.
    let spelled_out = json!({"classifications": ["critical", "security"], "maximum_duration": "PT2H",
                             "reboot": "if_required"});
    let again = install(&app, &machine, &operator, Some(spelled_out), Some("deploy-42")).await;
    assert_eq!(again.ok(202), &op);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(count(&app, "select count(*) from job").await, 1);

    let other = install(&app, &machine, &operator, Some(json!({"reboot": "never"})), Some("deploy-42")).await;
    other.problem(422, "idempotency_key_reused");
    // Keys belong to their caller: another token's same key is a new request (here: refused as busy).
    install(&app, &machine, ADMIN, None, Some("deploy-42")).await.problem(409, "conflict");
    install(&app, &machine, &operator, None, Some("")).await.problem(400, "validation_failed");
    assert_eq!(count(&app, "select count(*) from operation").await, 1);
}

// ---------------------------------------------------------------------------------------------
// Rollback.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rollback_is_refused_with_409_when_nothing_is_installed() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let r = rollback(&app, &machine, ADMIN, None).await;
    let detail = r.problem(409, "conflict")["detail"].as_str().unwrap();
    assert!(detail.contains("nothing is recorded as installed"), "{detail}");
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
}

#[tokio::test]
async fn rollback_of_a_machine_on_a_hotpatch_uninstalls_it_installs_the_baseline_and_reboots() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    let baseline =
        publish(&app, with(ws2022("baseline", true, "2025-01", "KB5050001"), json!({"build": "20348.3091"})))
            .await;
    let hotpatch =
        publish(&app, with(ws2022("hotpatch", true, "2025-02", "KB5050002"), json!({"build": "20348.3160"})))
            .await;
    let mut inv = inventory();
    inv["os_build"] = json!("20348.3160");
    inv["installed_updates"] = json!([
        {"kb": "KB5050001", "classification": "security", "installed_on": "2025-01-15"},
        {"kb": "KB5050002", "classification": "security", "installed_on": "2025-02-12", "installed_by": "hotpatch"}
    ]);
    assert_eq!(app.post("/v1/agent/inventory", &agent, inv).await.status, 204);

    let r = rollback(&app, &machine, ADMIN, Some("rollback-1")).await;
    let op = r.ok(202).clone();
    let id = id_of(&op);
    assert_eq!(r.headers["location"], format!("/v1/operations/{id}"));
    assert_eq!(op["kind"], "rollback");
    assert_eq!(op["status"], "queued");
    let plan = json!({
        "steps": [
            {"action": "uninstall", "release": {"id": hotpatch, "kb": "KB5050002", "month": "2025-02",
                                                "kind": "hotpatch", "build": "20348.3160"}},
            {"action": "install", "release": {"id": baseline, "kb": "KB5050001", "month": "2025-01",
                                              "kind": "baseline", "build": "20348.3091"}},
            {"action": "reboot"}
        ],
        "build": "20348.3091"
    });
    assert_eq!(op["plan"], plan);
    let w = warnings(&op);
    assert!(w.iter().any(|w| w.starts_with("the machine reboots") && w.contains("KB5050002")), "{w:?}");
    assert!(w.iter().any(|w| w.starts_with("KB5050002 will be offered again")), "{w:?}");

    // One disruptive job at a time: a second rollback or an install waits for this one.
    let rollback_job = op["results"][0]["job_id"].as_str().unwrap();
    for r in [rollback(&app, &machine, ADMIN, None).await, install(&app, &machine, ADMIN, None, None).await] {
        let detail = r.problem(409, "conflict")["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(rollback_job) && detail.contains("rollback"), "{detail}");
    }

    let job = app.claim(&agent).await;
    assert_eq!(job["kind"], "rollback");
    assert_eq!(job["payload"], plan, "the job carries the plan");
    let done = json!({"installed": ["KB5050001"], "rebooted": true, "reboot_pending": false});
    app.report(&agent, &job, "succeeded", done).await.ok(200);
    assert_eq!(app.operation(&id).await["status"], "succeeded");

    // A retry with the key answers the same operation and plan.
    let again = rollback(&app, &machine, ADMIN, Some("rollback-1")).await;
    assert_eq!(again.ok(202)["plan"], plan);
    assert_eq!(again.body["id"], id.as_str());

    let entry = &history(&app, &machine).await[0];
    assert_eq!(entry["kind"], "rollback");
    assert_eq!(entry["state"], "succeeded");
    assert_eq!(entry["uninstalled"], json!(["KB5050002"]));
    assert_eq!(entry["installed"], json!(["KB5050001"]));
    assert_eq!(entry["rebooted"], true);
    assert_eq!(entry["operation_id"], id.as_str());
}

#[tokio::test]
async fn rollback_takes_no_body_or_an_empty_object() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let r = app.post(&rollback_path(&machine), ADMIN, json!({"force": true})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "force");
    // `{}` is accepted: here refused for the machine's state, not the body.
    app.post(&rollback_path(&machine), ADMIN, json!({})).await.problem(409, "conflict");
}

// ---------------------------------------------------------------------------------------------
// Roles.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn install_and_rollback_are_for_operators_and_admins_only() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    for role in ["ci", "reader"] {
        let token = app.token(role).await;
        install(&app, &machine, &token, None, None).await.problem(403, "forbidden");
        rollback(&app, &machine, &token, None).await.problem(403, "forbidden");
    }
    install(&app, &machine, &agent, None, None).await.problem(403, "forbidden");
    rollback(&app, &machine, &agent, None).await.problem(403, "forbidden");
    app.call(Method::POST, &install_path(&machine), None, None).await.problem(401, "unauthorized");
    assert_eq!(count(&app, "select count(*) from operation").await, 0, "refused requests made nothing");

    let operator = app.token("operator").await;
    install(&app, &machine, &operator, None, None).await.ok(202);
    let other = app.machine_id(azure_2022("web-2")).await;
    install(&app, &other, ADMIN, None, None).await.ok(202);
}

// ---------------------------------------------------------------------------------------------
// Update history.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_history_keeps_every_install_and_reboot_even_among_a_thousand_assessments() {
    let app = TestApp::new().await;
    let (machine, agent) = machine_with_agent(&app, "web-1").await;
    // A failed install now.
    let op = install(&app, &machine, ADMIN, None, None).await.ok(202).clone();
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "failed", json!({"error": "maximum duration exceeded"})).await.ok(200);
    // A rollout's install of a catalog release, then a reboot, both through the queue.
    let release = uuid::Uuid::now_v7();
    let payload = InstallPayload {
        kbs: vec!["KB5050002".parse().unwrap()],
        requires_reboot: Some(false),
        release_id: Some(release),
        ..InstallPayload::default()
    };
    for (kind, payload) in
        [(JobKind::Install, serde_json::to_value(&payload).unwrap()), (JobKind::Reboot, json!({}))]
    {
        let new = NewJob {
            kind,
            machine_id: machine.parse().unwrap(),
            payload,
            priority: 0,
            run_after: Utc::now(),
            max_attempts: 3,
            operation_id: None,
            rollout_id: None,
            now: Utc::now(),
        };
        enqueue(&app.pool, &new).await.unwrap();
        let job = app.claim(&agent).await;
        let result = match kind {
            JobKind::Install => json!({"installed": ["KB5050002"], "rebooted": false}),
            _ => json!({"rebooted": true}),
        };
        app.report(&agent, &job, "succeeded", result).await.ok(200);
    }
    // A thousand and five assessments after them.
    sqlx::query(
        "insert into job (id, kind, machine_id, state, run_after, attempt, finished_at, created_at, updated_at)
         select gen_random_uuid(), 'assess', $1::uuid, 'succeeded', now(), 1, now(), now() + n * interval '1 ms', now()
         from generate_series(1, 1005) as n",
    )
    .bind(&machine)
    .execute(&app.pool)
    .await
    .unwrap();

    let items = history(&app, &machine).await;
    assert_eq!(items.len(), 1000);
    let of = |kind: &str| items.iter().filter(|i| i["kind"] == kind).cloned().collect::<Vec<_>>();
    let installs = of("install");
    assert_eq!(installs.len(), 2, "both installs are listed");
    let (rollout_install, install_now) = (&installs[0], &installs[1]);
    assert_eq!(install_now["state"], "failed");
    assert_eq!(install_now["error"], "maximum duration exceeded");
    assert_eq!(install_now["operation_id"], op["id"]);
    assert_eq!(rollout_install["state"], "succeeded");
    assert_eq!(rollout_install["release_id"], release.to_string());
    assert_eq!(rollout_install["installed"], json!(["KB5050002"]));
    let reboots = of("reboot");
    assert_eq!(reboots.len(), 1);
    assert_eq!(reboots[0]["rebooted"], true);
    assert_eq!(of("assess").len(), 997, "assessments fill the rest");
    let created: Vec<_> = items.iter().map(|i| instant(&i["created_at"])).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
}
