//! Operations an operator can see and stop (issue 20, points 1 and 2): the list with its filters
//! and pages, cancel (queued jobs end, running ones finish), the warnings about machines without
//! a connected agent, and the time-to-live after which an unclaimed job ends `expired`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::Method;
use chrono::{DateTime, TimeDelta, Utc};
use common::{azure_2022, id_of, instant, TestApp, ADMIN};
use hotpatch_app::clock::Clock;
use hotpatch_app::duties::lease_reaper;
use serde_json::{json, Value};

fn install_path(machine: &str) -> String {
    format!("/v1/machines/{machine}/install")
}

fn cancel_path(op: &str) -> String {
    format!("/v1/operations/{op}/cancel")
}

/// A new token of `role`: (its id, its secret).
async fn token_with_id(app: &TestApp, role: &str) -> (String, String) {
    let r = app.post("/v1/tokens", ADMIN, json!({"name": format!("{role} pipeline"), "role": role})).await;
    let body = r.ok(201);
    (id_of(body), body["token"].as_str().unwrap().to_owned())
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(id_of).collect()
}

#[tokio::test]
async fn canceling_a_queued_install_frees_the_machine_for_the_next_one() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("no-agent")).await;
    let operator = app.token("operator").await;
    let first = app.call(Method::POST, &install_path(&machine), Some(&operator), None).await;
    let first = id_of(first.ok(202));
    // Nothing claims it: a second install is refused while the first is queued.
    let blocked = app.call(Method::POST, &install_path(&machine), Some(&operator), None).await;
    blocked.problem(409, "conflict");

    let canceled = app.call(Method::POST, &cancel_path(&first), Some(&operator), None).await;
    let op = canceled.ok(200);
    assert_eq!(op["status"], "canceled", "{op}");
    assert_eq!(op["results"][0]["state"], "canceled");
    assert!(op["finished_at"].is_string());
    assert!(op.get("warnings").is_none(), "nothing was left running: {op}");

    app.call(Method::POST, &install_path(&machine), Some(&operator), None).await.ok(202);
    // Over is over: a second cancel is a conflict, an unknown operation 404, a reader 403.
    let again = app.call(Method::POST, &cancel_path(&first), Some(&operator), None).await;
    assert!(again.problem(409, "conflict")["detail"].as_str().unwrap().contains("already over (canceled)"));
    let unknown =
        app.call(Method::POST, &cancel_path(&uuid::Uuid::now_v7().to_string()), Some(ADMIN), None).await;
    unknown.problem(404, "not_found");
    let reader = app.token("reader").await;
    app.call(Method::POST, &cancel_path(&first), Some(&reader), None).await.problem(403, "forbidden");
}

#[tokio::test]
async fn canceling_leaves_a_running_job_to_finish_and_says_so() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("busy")).await;
    let agent = app.agent_token(&machine).await;
    let op = id_of(app.call(Method::POST, &install_path(&machine), Some(ADMIN), None).await.ok(202));
    let job = app.claim(&agent).await;

    let r = app.call(Method::POST, &cancel_path(&op), Some(ADMIN), None).await;
    let view = r.ok(200);
    assert_eq!(view["status"], "running");
    let w = view["warnings"][0].as_str().unwrap();
    assert!(w.contains("1 job(s) already running were left to finish"), "{w}");

    app.report(&agent, &job, "succeeded", json!({"installed": []})).await.ok(200);
    let done = app.operation(&op).await;
    assert_eq!(done["status"], "succeeded", "the running install finished: {done}");
}

#[tokio::test]
async fn operations_list_newest_first_filtered_by_kind_status_and_creator_a_page_at_a_time() {
    let app = TestApp::new().await;
    let a = app.machine_id(azure_2022("a")).await;
    let b = app.machine_id(azure_2022("b")).await;
    let (ci_id, ci) = token_with_id(&app, "ci").await;
    let first = id_of(&app.assess(&a, &ci).await);
    let second = id_of(&app.assess(&b, ADMIN).await);
    let install = id_of(app.call(Method::POST, &install_path(&a), Some(ADMIN), None).await.ok(202));
    app.call(Method::POST, &cancel_path(&install), Some(ADMIN), None).await.ok(200);

    let reader = app.token("reader").await;
    let all = app.get("/v1/operations", &reader).await;
    assert_eq!(ids(all.ok(200)), [install.clone(), second.clone(), first.clone()]);
    let item = &all.body["items"][2];
    assert_eq!((item["kind"].as_str(), item["status"].as_str()), (Some("assess"), Some("queued")));
    assert_eq!(item["created_by"], ci_id.as_str());
    assert_eq!(item["machines"], json!({"total": 1, "succeeded": 0, "failed": 0, "pending": 1}));
    assert!(item.get("results").is_none(), "no per-machine results in a list: {item}");

    let of = |q: &str| format!("/v1/operations?{q}");
    assert_eq!(ids(app.get(&of("kind=install"), &reader).await.ok(200)), std::slice::from_ref(&install));
    assert_eq!(ids(app.get(&of("status=canceled"), &reader).await.ok(200)), std::slice::from_ref(&install));
    assert_eq!(
        ids(app.get(&of("status=queued&kind=assess"), &reader).await.ok(200)),
        [second.clone(), first.clone()]
    );
    assert_eq!(
        ids(app.get(&of(&format!("created_by={ci_id}")), &reader).await.ok(200)),
        std::slice::from_ref(&first)
    );
    assert_eq!(
        ids(app.get(&of(&format!("creator={ci_id}")), &reader).await.ok(200)),
        std::slice::from_ref(&first)
    );

    let page = app.get(&of("limit=2"), &reader).await;
    assert_eq!(ids(page.ok(200)), [install, second]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app.get(&of(&format!("limit=2&cursor={cursor}")), &reader).await;
    assert_eq!(ids(rest.ok(200)), [first]);
    assert!(rest.body["next_cursor"].is_null());

    for bad in ["kind=reboot", "status=done", "created_by=me", "sort=id", "limit=0"] {
        app.get(&of(bad), &reader).await.problem(400, "validation_failed");
    }
}

fn whole_second_now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn warnings(op: &Value) -> Vec<String> {
    op["warnings"]
        .as_array()
        .map(|w| w.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn jobs_for_machines_without_a_connected_agent_are_named_at_once_and_expire_after_the_ttl() {
    let t0 = whole_second_now();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let online = app.machine_id(azure_2022("online")).await;
    let agent = app.agent_token(&online).await;
    app.claim_nothing(&agent).await;
    let offline = app.machine_id(azure_2022("offline")).await;

    let r = app.post("/v1/assessments", ADMIN, json!({"machine_ids": [online, offline]})).await;
    let op = id_of(r.ok(202));
    let w = warnings(&r.body);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("1 of 2 machine(s) have no connected agent (offline): "), "{w:?}");
    assert!(w[0].ends_with("end expired if it does not claim them within 24h"), "{w:?}");
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);

    // The time-to-live counts from the job's creation, on the service clock.
    let ttl = state.settings.job_ttl;
    state.clock.set(t0 + ttl - TimeDelta::seconds(1));
    let pass = lease_reaper::tick(&state, t0, state.clock.now()).await.unwrap().unwrap();
    assert_eq!(pass.expired, 0);
    assert_eq!(app.operation(&op).await["status"], "running");
    state.clock.set(t0 + ttl);
    let pass = lease_reaper::tick(&state, t0, state.clock.now()).await.unwrap().unwrap();
    assert_eq!(pass.expired, 1);

    let view = app.operation(&op).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["machines"], json!({"total": 2, "succeeded": 1, "failed": 1, "pending": 0}));
    assert_eq!(instant(&view["finished_at"]), t0 + ttl);
    let expired = &view["results"][0];
    assert_eq!(
        (expired["machine_id"].as_str(), expired["state"].as_str()),
        (Some(offline.as_str()), Some("expired"))
    );
    assert!(expired["error"].as_str().unwrap().contains("did not claim the job within 24h"), "{expired}");
    let listed = app.get("/v1/operations?status=failed", ADMIN).await;
    assert_eq!(ids(listed.ok(200)), [op]);

    // Left out on request: the operation waits only for machines that can answer.
    app.claim_nothing(&agent).await;
    let path = "/v1/assessments?skip_disconnected=true";
    let r = app.post(path, ADMIN, json!({"machine_ids": [online, offline]})).await;
    assert_eq!(r.ok(202)["machines"]["total"], 1);
    assert_eq!(warnings(&r.body), ["1 machine(s) without a connected agent were left out (offline)"]);
    let r = app.post(path, ADMIN, json!({"machine_ids": [offline]})).await;
    assert!(r.problem(422, "validation_failed")["detail"]
        .as_str()
        .unwrap()
        .contains("no machine with a connected agent"));
    app.post("/v1/assessments?skip_disconnected=maybe", ADMIN, json!({}))
        .await
        .problem(400, "validation_failed");

    // An install now says so too.
    let r = app.call(Method::POST, &install_path(&offline), Some(ADMIN), None).await;
    assert!(
        warnings(r.ok(202)).iter().any(|w| w.contains("have no connected agent (offline)")),
        "{}",
        r.body
    );
}
