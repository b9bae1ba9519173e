//! The audit log (issue 20, point 12): every write through the API with who made it, what, on
//! what, how it ended, the request id and when; `GET /v1/audit` for admins, with filters and
//! pages; entries past the retention deleted by the retention duty.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::{HeaderValue, Method};
use chrono::{DateTime, Utc};
use common::{azure_2022, id_of, instant, TestApp, ADMIN};
use hotpatch_app::clock::Clock;
use hotpatch_app::duties::retention;
use serde_json::{json, Value};

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_write_is_recorded_with_who_what_target_result_request_id_and_time() {
    let t0 = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0)).await;
    let r = app.post("/v1/tokens", ADMIN, json!({"name": "alice", "role": "operator"})).await;
    let (alice_id, alice) = (id_of(r.ok(201)), r.body["token"].as_str().unwrap().to_owned());

    let request_id = [("x-request-id", HeaderValue::from_static("change-4711"))];
    let r = app
        .call_with_headers(Method::POST, "/v1/machines", Some(&alice), &request_id, Some(azure_2022("web-1")))
        .await;
    let machine = id_of(r.ok(201));
    // Refused writes are recorded too; reads, unauthenticated requests and agents' protocol are not.
    app.post("/v1/tokens", &alice, json!({"name": "x", "role": "admin"})).await.problem(403, "forbidden");
    app.get("/v1/machines", &alice).await.ok(200);
    app.call(Method::POST, "/v1/machines", None, Some(azure_2022("web-2")))
        .await
        .problem(401, "unauthorized");
    let agent = app.agent_token(&machine).await;
    app.claim_nothing(&agent).await;
    app.delete(&format!("/v1/machines/{machine}"), &alice).await.ok(204);

    let log = app.get("/v1/audit", ADMIN).await;
    let entries = items(log.ok(200));
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "DELETE /v1/machines/{id}",
            "POST /v1/machines/{id}/agent-token",
            "POST /v1/tokens",
            "POST /v1/machines",
            "POST /v1/tokens"
        ],
        "newest first"
    );
    let created = &entries[3];
    assert_eq!(created["token_id"], alice_id.as_str());
    assert_eq!(created["token_name"], "alice");
    assert_eq!(created["role"], "operator");
    assert_eq!(created["target"], "/v1/machines");
    assert_eq!(created["location"], format!("/v1/machines/{machine}"));
    assert_eq!((created["status"].as_u64(), created["result"].as_str()), (Some(201), Some("succeeded")));
    assert_eq!(created["request_id"], "change-4711");
    assert_eq!(instant(&created["at"]), t0);
    let refused = &entries[2];
    assert_eq!((refused["status"].as_u64(), refused["result"].as_str()), (Some(403), Some("refused")));
    assert!(refused["request_id"].as_str().is_some_and(|id| !id.is_empty()), "a generated request id");
    assert_eq!(entries[0]["target"], format!("/v1/machines/{machine}"));

    // Filters and pages.
    let of = |q: &str| format!("/v1/audit?{q}");
    assert_eq!(items(app.get(&of(&format!("token_id={alice_id}")), ADMIN).await.ok(200)).len(), 3);
    assert_eq!(items(app.get(&of("result=refused"), ADMIN).await.ok(200)).len(), 1);
    let on_machine = items(app.get(&of(&format!("target=/v1/machines/{machine}*")), ADMIN).await.ok(200));
    assert_eq!(on_machine.len(), 2, "the agent token and the delete");
    assert_eq!(items(app.get(&of("target=/v1/machines"), ADMIN).await.ok(200)).len(), 1);
    let later = (t0 + chrono::TimeDelta::seconds(1)).to_rfc3339();
    assert!(
        items(app.get(&of(&format!("since={}", later.replace('+', "%2B"))), ADMIN).await.ok(200)).is_empty()
    );
    let page = app.get(&of("limit=2"), ADMIN).await;
    assert_eq!(items(page.ok(200)).len(), 2);
    let rest =
        app.get(&of(&format!("limit=10&cursor={}", page.body["next_cursor"].as_str().unwrap())), ADMIN).await;
    assert_eq!(items(rest.ok(200)).len(), 3);
    for bad in ["result=ok", "token_id=alice", "since=yesterday", "who=alice"] {
        app.get(&of(bad), ADMIN).await.problem(400, "validation_failed");
    }
    app.get("/v1/audit", &alice).await.problem(403, "forbidden");

    // Kept for the retention, by database time.
    let retention = state.settings.audit_retention;
    assert_eq!(retention::tick(&state).await.unwrap().unwrap().audit, 0);
    sqlx::query("update audit_entry set created_at = now() - $1::interval where action = 'POST /v1/tokens'")
        .bind(format!("{} days 1 second", retention.num_days()))
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(retention::tick(&state).await.unwrap().unwrap().audit, 2);
    assert_eq!(items(app.get("/v1/audit", ADMIN).await.ok(200)).len(), 3);
}
