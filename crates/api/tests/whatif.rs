//! `POST /v1/what-if`: an unplanned baseline or a withdrawn hotpatch, its effect on each machine's
//! next install, reboots and window, on the year's reboots and on rollouts; nothing written.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::Method;
use common::{azure_2022, jan_to_may, with, TestApp, ADMIN};
use hotpatch_api::AppState;
use hotpatch_app::clock::Clock;
use serde_json::{json, Value};

/// 2025-05-20 10:00 UTC, the May hotpatch out; a fleet of three: `a` on the April baseline with
/// May's hotpatch, `b` on the April baseline without it, `c` with hotpatch off and May's update.
async fn fleet() -> (TestApp, AppState, Vec<String>, [String; 3]) {
    let (app, state) =
        TestApp::with_state(|s| s.clock = Clock::manual("2025-05-20T10:00:00Z".parse().unwrap())).await;
    let r = jan_to_may(&app).await;
    let a = app.machine_id(azure_2022("a")).await;
    let b = app.machine_id(azure_2022("b")).await;
    let c = app.machine_id(with(azure_2022("c"), json!({"hotpatch_enabled": false}))).await;
    for (id, body) in [
        (&a, json!({"current_baseline_id": r[3], "latest_installed_id": r[4]})),
        (&b, json!({"current_baseline_id": r[3], "latest_installed_id": r[3]})),
        (&c, json!({"latest_installed_id": r[4]})),
    ] {
        app.call(Method::PUT, &format!("/v1/machines/{id}/installed-state"), Some(ADMIN), Some(body))
            .await
            .ok(200);
    }
    (app, state, r, [a, b, c])
}

async fn rows(app: &TestApp) -> (i64, i64) {
    let releases = sqlx::query_scalar("select count(*) from release").fetch_one(&app.pool).await.unwrap();
    let jobs = sqlx::query_scalar("select count(*) from job").fetch_one(&app.pool).await.unwrap();
    (releases, jobs)
}

fn ids(v: &Value) -> Vec<&str> {
    v["items"].as_array().unwrap().iter().map(|m| m["machine_id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_unplanned_baseline_reboots_the_hotpatch_machines_in_their_next_window() {
    let (app, _, r, [a, b, c]) = fleet().await;
    let before = rows(&app).await;
    let reader = app.token("reader").await;
    let body = json!({"scenario": "unplanned_baseline", "os": "windows_server_2022", "month": "2025-05",
                      "released_at": "2025-05-22"});
    let v = app.post("/v1/what-if", &reader, body).await.ok(200).clone();
    assert_eq!(v["at"], "2025-05-22T00:00:00Z", "{v}");
    assert!(v["scenario"]
        .as_str()
        .unwrap()
        .contains("unplanned baseline of windows_server_2022 for 2025-05"));
    assert_eq!(
        (&v["machines"], &v["changed"], &v["newly_rebooting"]),
        (&json!(3), &json!(3), &json!(3)),
        "{v}"
    );
    let mut expected = vec![a.as_str(), b.as_str(), c.as_str()];
    expected.sort();
    assert_eq!(ids(&v), expected);
    let item_a = v["items"].as_array().unwrap().iter().find(|m| m["machine_id"] == a.as_str()).unwrap();
    assert_eq!(item_a["name"], "a");
    assert_eq!(item_a["next_before"], Value::Null, "a had nothing to install");
    assert_eq!(
        (&item_a["next_after"]["kind"], &item_a["next_after"]["planned"]),
        (&json!("baseline"), &json!(false))
    );
    // Its default window, 01:00–05:00 in Berlin, in progress when the baseline comes out.
    assert_eq!(item_a["window"]["start"], "2025-05-21T23:00:00Z", "{item_a}");
    let item_b = v["items"].as_array().unwrap().iter().find(|m| m["machine_id"] == b.as_str()).unwrap();
    assert_eq!(item_b["next_before"]["id"], r[4].as_str(), "b still needed May's hotpatch");
    // The year: two hotpatch machines go from 4 to 5 projected reboots, c stays at 12.
    assert_eq!(v["reboots_before"]["projected_year"], 4 + 4 + 12);
    assert_eq!(v["reboots_after"]["projected_year"], 5 + 5 + 12);
    assert_eq!(v["reboots_after"]["this_year"], 3 + 3 + 5);
    assert_eq!(rows(&app).await, before, "nothing written");

    let limited = app
        .post(
            "/v1/what-if?limit=1",
            ADMIN,
            json!({"scenario": "unplanned_baseline", "os": "windows_server_2022", "month": "2025-05"}),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(limited["items"].as_array().unwrap().len(), 1);
    assert_eq!(limited["changed"], 3);
    assert_eq!(limited["at"], "2025-05-20T10:00:00Z", "May's Patch Tuesday has passed: now");
}

#[tokio::test]
async fn a_withdrawn_hotpatch_leaves_its_machines_nothing_and_names_its_rollout() {
    let (app, _, r, [_, b, _]) = fleet().await;
    let rollout = app.post("/v1/rollouts", ADMIN, json!({"release_id": r[4]})).await.ok(201)["id"].clone();
    let v = app
        .post("/v1/what-if", ADMIN, json!({"scenario": "hotpatch_withdrawn", "release_id": r[4]}))
        .await
        .ok(200)
        .clone();
    assert_eq!((&v["changed"], &v["newly_rebooting"]), (&json!(1), &json!(0)), "{v}");
    assert_eq!(ids(&v), vec![b.as_str()]);
    assert_eq!(v["items"][0]["next_after"], Value::Null);
    assert_eq!(v["rollouts"][0]["rollout_id"], rollout, "{v}");
    assert!(v["rollouts"][0]["change"].as_str().unwrap().contains("withdrawn hotpatch"));
    assert_eq!(v["reboots_before"], v["reboots_after"], "a hotpatch reboots nobody");
}

#[tokio::test]
async fn scenarios_the_rules_refuse_are_4xx_problems() {
    let (app, _, r, _) = fleet().await;
    let cases = [
        (json!({"scenario": "hotpatch_withdrawn", "release_id": r[3]}), 422, "validation_failed"),
        (
            json!({"scenario": "hotpatch_withdrawn", "release_id": "01900000-0000-7000-8000-000000000000"}),
            404,
            "not_found",
        ),
        (
            json!({"scenario": "unplanned_baseline", "os": "windows_server_2022", "month": "2025-04"}),
            422,
            "validation_failed",
        ),
        (
            json!({"scenario": "unplanned_baseline", "os": "windows_server_2022", "month": "May"}),
            422,
            "validation_failed",
        ),
        (json!({"scenario": "meteor_strike"}), 422, "validation_failed"),
        (json!({"scenario": "hotpatch_withdrawn", "release_id": r[4], "extra": 1}), 422, "validation_failed"),
    ];
    for (body, status, code) in cases {
        let got = app.post("/v1/what-if", ADMIN, body.clone()).await;
        assert_eq!(got.status.as_u16(), status, "{body}: {}", got.body);
        got.problem(status, code);
    }
    let r = app
        .post("/v1/what-if?limit=0", ADMIN, json!({"scenario": "hotpatch_withdrawn", "release_id": r[4]}))
        .await;
    r.problem(400, "validation_failed");
}
