//! Patch status at fleet scale: the ETag of `GET /v1/machines/{id}/patch-status` (changes exactly
//! when the answer does, also when only the clock changes it), 304s, the list with
//! `include=patch_status` and its ETag, and `GET /v1/fleet/summary`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::{HeaderValue, Method};
use chrono::{DateTime, TimeDelta, Utc};
use common::{azure_2022, eventually, jan_to_may, listen, with, ws2022, TestApp, ADMIN};
use hotpatch_api::AppState;
use hotpatch_app::clock::Clock;
use serde_json::{json, Value};

/// 2025-05-20 10:00 UTC: a May hotpatch month; the default window (01:00–05:00 Berlin) is ahead.
fn may_20() -> DateTime<Utc> {
    "2025-05-20T10:00:00Z".parse().unwrap()
}

async fn app_at(at: DateTime<Utc>) -> (TestApp, AppState) {
    TestApp::with_state(|s| s.clock = Clock::manual(at)).await
}

fn status_path(id: &str) -> String {
    format!("/v1/machines/{id}/patch-status")
}

/// GET with an `If-None-Match`; returns the status code and the ETag.
async fn conditional(app: &TestApp, path: &str, tag: &str) -> (u16, String) {
    let r = app
        .call_with_headers(
            Method::GET,
            path,
            Some(ADMIN),
            &[("if-none-match", HeaderValue::from_str(tag).unwrap())],
            None,
        )
        .await;
    if r.status == 304 {
        assert_eq!(r.body, Value::Null, "a 304 has no body");
    }
    (r.status.as_u16(), r.headers["etag"].to_str().unwrap().to_owned())
}

/// The answer and its ETag.
async fn status(app: &TestApp, id: &str) -> (Value, String) {
    let r = app.get(&status_path(id), ADMIN).await;
    let body = r.ok(200).clone();
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"), "a strong tag: {etag}");
    (body, etag)
}

#[tokio::test]
async fn the_answer_has_every_field_of_the_contract() {
    let (app, _) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&id).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, common::inventory()).await.status, 204);
    let (body, _) = status(&app, &id).await;
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
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    for field in ["enabled", "eligible", "preview", "status"] {
        assert!(body["hotpatch"].get(field).is_some(), "hotpatch.{field}");
    }
    for field in ["month", "kind", "next_release", "reboot_required"] {
        assert!(body["cycle"].get(field).is_some(), "cycle.{field}");
    }
    assert_eq!(body["hotpatch"]["status"], "needs_baseline");
    assert_eq!(body["cycle"]["next_release"]["release"]["kb"], "KB5000003");
    assert_eq!(body["os_build"], "20348.2227");
    assert_eq!(body["recommended_updates"].as_array().unwrap().len(), 2);
    assert_eq!(body["update_compliance"].as_array().unwrap().len(), 2);
    assert_eq!(body["agent"]["connected"], true);
    assert_eq!(body["next_window"]["start"], "2025-05-20T23:00:00Z");
    assert_eq!(body["last_assessment_at"], "2025-05-20T10:00:00Z");
}

#[tokio::test]
async fn the_same_answer_keeps_its_etag_and_an_unrelated_machine_does_not_move_it() {
    let (app, _) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let other = app.machine_id(azure_2022("web-2")).await;
    let (body, etag) = status(&app, &id).await;
    let (again, same) = status(&app, &id).await;
    assert_eq!((&again, &same), (&body, &etag));

    // Changes to another machine: its spec, its installed state, its assessment.
    app.patch(&format!("/v1/machines/{other}"), ADMIN, json!({"labels": {"env": "dev"}})).await.ok(200);
    let put = app
        .call(
            Method::PUT,
            &format!("/v1/machines/{other}/installed-state"),
            Some(ADMIN),
            Some(json!({"reboot_pending": true})),
        )
        .await;
    put.ok(200);
    let agent = app.agent_token(&other).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, common::inventory()).await.status, 204);
    assert_eq!(status(&app, &id).await, (body, etag));
}

#[tokio::test]
async fn if_none_match_answers_304_for_every_form_that_matches() {
    let (app, _) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let (_, etag) = status(&app, &id).await;
    let path = status_path(&id);
    let cases = [
        (etag.clone(), 304, "the tag itself"),
        (format!("W/{etag}"), 304, "its weak form (If-None-Match compares weakly)"),
        (format!("\"nope\", {etag}"), 304, "in a list"),
        ("*".to_owned(), 304, "any"),
        ("\"0123456789abcdef0123456789abcdef.1\"".to_owned(), 200, "another tag"),
        ("garbage".to_owned(), 200, "not a tag"),
    ];
    for (tag, expected, what) in cases {
        let (code, got) = conditional(&app, &path, &tag).await;
        assert_eq!(code, expected, "{what}: {tag}");
        assert_eq!(got, etag, "{what}: the ETag is sent either way");
    }
    // Unknown machine: 404 even with a tag.
    let r = app
        .call_with_headers(
            Method::GET,
            &status_path("0190d2c4-0000-7000-8000-000000000000"),
            Some(ADMIN),
            &[("if-none-match", HeaderValue::from_str(&etag).unwrap())],
            None,
        )
        .await;
    r.problem(404, "not_found");
}

/// What changes a machine's answer, one change per row; after each, the old tag no longer
/// matches (200 with the new tag), and the new one does (304).
#[tokio::test]
async fn the_etag_changes_when_an_assessment_an_install_or_a_window_changes_the_answer() {
    etag_follows_assessments_installs_and_windows(false).await;
}

/// The same with answers kept in memory: every write through the API drops what it changed
/// before its response, so the read right after it never gets the kept answer.
#[tokio::test]
async fn the_etag_changes_when_an_assessment_an_install_or_a_window_changes_the_answer_with_answers_kept() {
    etag_follows_assessments_installs_and_windows(true).await;
}

async fn etag_follows_assessments_installs_and_windows(kept: bool) {
    let (app, state) = app_at(may_20()).await;
    let _listening = if kept { Some(listen(&app, &state).await) } else { None };
    let releases = jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&id).await;
    let path = status_path(&id);
    let installed = format!("/v1/machines/{id}/installed-state");
    type Step<'a> =
        (&'a str, Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> + 'a>);
    let steps: Vec<Step> = vec![
        (
            "an assessment",
            Box::new(|| {
                Box::pin(async {
                    assert_eq!(
                        app.post("/v1/agent/inventory", &agent, common::inventory()).await.status,
                        204
                    );
                })
            }),
        ),
        (
            "an install (the current baseline)",
            Box::new(|| {
                Box::pin(async {
                    let body = json!({"current_baseline_id": releases[3], "latest_installed_id": releases[3], "reboot_pending": true});
                    app.call(Method::PUT, &installed, Some(ADMIN), Some(body)).await.ok(200);
                })
            }),
        ),
        (
            "the reboot after it",
            Box::new(|| {
                Box::pin(async {
                    let body = json!({"current_baseline_id": releases[3], "latest_installed_id": releases[3], "reboot_pending": false});
                    app.call(Method::PUT, &installed, Some(ADMIN), Some(body)).await.ok(200);
                })
            }),
        ),
        (
            "a maintenance configuration that takes the machine (its window)",
            Box::new(|| {
                Box::pin(async {
                    let config = json!({"name": "weekly", "recurrence": {"frequency": "weekly", "days_of_week": ["saturday"]},
                "start_time": "22:00", "duration": "PT4H", "timezone": null, "scope": {"regions": ["westeurope"]}});
                    app.post("/v1/maintenance-configurations", ADMIN, config).await.ok(201);
                })
            }),
        ),
        (
            "a health report",
            Box::new(|| {
                Box::pin(async {
                    let r = app.post("/v1/agent/health", &agent, json!({"status": "unhealthy"})).await;
                    assert!(r.status.is_success(), "{}", r.body);
                })
            }),
        ),
        (
            "hotpatch turned off",
            Box::new(|| {
                Box::pin(async {
                    app.patch(&format!("/v1/machines/{id}"), ADMIN, json!({"hotpatch_enabled": false}))
                        .await
                        .ok(200);
                })
            }),
        ),
    ];
    let (mut body, mut etag) = status(&app, &id).await;
    for (what, step) in steps {
        step().await;
        let (new_body, new_etag) = status(&app, &id).await;
        assert_ne!(new_body, body, "{what} changes the answer");
        assert_ne!(new_etag, etag, "{what} changes the ETag");
        assert_eq!(conditional(&app, &path, &etag).await, (200, new_etag.clone()), "{what}: old tag");
        assert_eq!(conditional(&app, &path, &new_etag).await, (304, new_etag.clone()), "{what}: new tag");
        (body, etag) = (new_body, new_etag);
    }
    assert_eq!(state.status_cache.stats().hits > 0, kept, "answers kept in memory are served: {kept}");
}

#[tokio::test]
async fn the_clock_changes_the_etag_exactly_when_it_changes_the_answer() {
    clock_moves_the_etag_exactly_when_it_moves_the_answer(false).await;
}

#[tokio::test]
async fn the_clock_changes_the_etag_exactly_when_it_changes_the_answer_with_answers_kept() {
    clock_moves_the_etag_exactly_when_it_moves_the_answer(true).await;
}

async fn clock_moves_the_etag_exactly_when_it_moves_the_answer(kept: bool) {
    let (app, state) = app_at(may_20()).await;
    let _listening = if kept { Some(listen(&app, &state).await) } else { None };
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&id).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, common::inventory()).await.status, 204);
    let path = status_path(&id);
    let (body, etag) = status(&app, &id).await;
    assert_eq!(body["agent"]["connected"], true);

    // (advance by, answer changes?, what changes)
    let cases = [
        (TimeDelta::seconds(30), false, "nothing within the agent's two minutes"),
        (TimeDelta::seconds(91), true, "the agent turns disconnected"),
        (TimeDelta::hours(10), false, "nothing until the window ends"),
        (TimeDelta::hours(7), true, "the window ended: the next one is shown"),
        (TimeDelta::days(12), true, "a new month"),
    ];
    let (mut body, mut etag) = (body, etag);
    for (by, changes, what) in cases {
        state.clock.advance(by);
        let (new_body, new_etag) = status(&app, &id).await;
        assert_eq!(new_body != body, changes, "{what}: answer");
        assert_eq!(new_etag != etag, changes, "{what}: ETag");
        let expected = if changes { 200 } else { 304 };
        assert_eq!(conditional(&app, &path, &etag).await.0, expected, "{what}: the old tag");
        (body, etag) = (new_body, new_etag);
    }
}

#[tokio::test]
async fn at_evaluates_another_instant_with_its_own_etag() {
    let (app, _) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let r = app.get(&format!("{}?at=2025-03-20T00:00:00Z", status_path(&id)), ADMIN).await;
    assert_eq!(r.ok(200)["cycle"]["month"], "2025-03");
    let tag = r.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(tag, status(&app, &id).await.1);
    let (code, _) = conditional(&app, &format!("{}?at=2025-03-20T00:00:00Z", status_path(&id)), &tag).await;
    assert_eq!(code, 304);
    let (code, _) = conditional(&app, &status_path(&id), &tag).await;
    assert_eq!(code, 200, "the tag of another instant does not match now's answer");
}

#[tokio::test]
async fn the_list_includes_patch_status_with_a_list_etag() {
    let (app, _) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let a = app.machine_id(azure_2022("a")).await;
    let b = app.machine_id(azure_2022("b")).await;
    let path = "/v1/machines?include=patch_status&limit=10";
    let r = app.get(path, ADMIN).await;
    let page = r.ok(200).clone();
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for (item, id) in items.iter().zip([&a, &b]) {
        assert_eq!(item["id"], id.as_str());
        let (own, own_etag) = status(&app, id).await;
        assert_eq!(item["patch_status"], own, "the same status as the machine's own");
        assert_eq!(item["patch_status_etag"], own_etag.as_str(), "and the same tag");
        assert_eq!(conditional(&app, &status_path(id), &own_etag).await.0, 304);
    }
    // Without include: no patch_status, another tag.
    let plain = app.get("/v1/machines?limit=10", ADMIN).await;
    assert!(plain.ok(200)["items"][0].get("patch_status").is_none());
    assert!(plain.body["items"][0].get("patch_status_etag").is_none());
    assert_ne!(plain.headers["etag"].to_str().unwrap(), etag);

    assert_eq!(conditional(&app, path, &etag).await, (304, etag.clone()));
    assert_eq!(conditional(&app, path, &format!("W/{etag}")).await.0, 304);
    assert_eq!(conditional(&app, path, "*").await.0, 304);
    assert_eq!(app.get(path, ADMIN).await.headers["etag"].to_str().unwrap(), etag, "same page, same tag");

    // A change to one machine's status changes the page's tag.
    let agent = app.agent_token(&b).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, common::inventory()).await.status, 204);
    let (code, new_etag) = conditional(&app, path, &etag).await;
    assert_eq!(code, 200);
    assert_ne!(new_etag, etag);
}

fn summary_of(v: &Value) -> Value {
    json!({
        "machines": v["machines"], "hotpatch_status": v["hotpatch_status"], "compliance": v["compliance"],
        "reboot_pending": v["reboot_pending"], "overdue": v["overdue"],
    })
}

fn counts(machines: i64, hp: [i64; 4], comp: [i64; 3], reboot: i64, overdue: i64) -> Value {
    json!({
        "machines": machines,
        "hotpatch_status": {"enabled": hp[0], "disabled": hp[1], "not_eligible": hp[2], "needs_baseline": hp[3]},
        "compliance": {"compliant": comp[0], "non_compliant": comp[1], "unknown": comp[2]},
        "reboot_pending": reboot, "overdue": overdue,
    })
}

/// A group of the summary: its key and counts.
fn group(key: Value, counts: Value) -> Value {
    let mut g = counts;
    g["key"] = key;
    g
}

#[tokio::test]
async fn the_summary_counts_a_known_fleet_as_a_whole_and_by_group() {
    let (app, _) = app_at(may_20()).await;
    let r = jan_to_may(&app).await;
    // a: on the April baseline with May's hotpatch, assessed with security updates outstanding.
    let a = app.machine_id(azure_2022("a")).await;
    let put = |id: String, body: Value| {
        let app = &app;
        async move {
            app.call(Method::PUT, &format!("/v1/machines/{id}/installed-state"), Some(ADMIN), Some(body))
                .await
                .ok(200);
        }
    };
    put(a.clone(), json!({"current_baseline_id": r[3], "latest_installed_id": r[4]})).await;
    let agent = app.agent_token(&a).await;
    assert_eq!(app.post("/v1/agent/inventory", &agent, common::inventory()).await.status, 204);
    // b: hotpatch on, never installed the April baseline (out since 2025-04-14: overdue).
    let b =
        app.machine_id(with(azure_2022("b"), json!({"region": "eastus", "labels": {"env": "dev"}}))).await;
    // c: hotpatch off, May's cumulative update installed, reboot pending; assessed, nothing outstanding.
    let c = app.machine_id(with(azure_2022("c"), json!({"hotpatch_enabled": false, "labels": {}}))).await;
    put(c.clone(), json!({"latest_installed_id": r[4], "reboot_pending": true})).await;
    let agent = app.agent_token(&c).await;
    let mut clean = common::inventory();
    clean["available_updates"] = json!([{"kb": "KB5040003", "title": "NIC driver", "classification": "driver", "requires_reboot": true}]);
    clean["reboot_pending"] = json!(true);
    assert_eq!(app.post("/v1/agent/inventory", &agent, clean).await.status, 204);
    // d: not eligible (a plain image), never assessed, needs May's cumulative update (6 days old).
    let plain =
        json!({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter"});
    let d = app
        .machine_id(with(
            azure_2022("d"),
            json!({"hotpatch_enabled": false, "image": plain, "region": "eastus"}),
        ))
        .await;

    let whole = app.get("/v1/fleet/summary", ADMIN).await.ok(200).clone();
    assert_eq!(summary_of(&whole), counts(4, [1, 1, 1, 1], [1, 1, 2], 1, 1), "{whole}");
    assert_eq!(whole["groups"], json!([]));
    assert_eq!(whole["at"], "2025-05-20T10:00:00Z");
    // Reboots avoided: a and b take hotpatches (January and April baselines: 2 of 5 months so
    // far, 4 of 12 over the year), c and d reboot every month.
    assert_eq!(
        whole["reboots"],
        json!({"year": 2025, "this_year": 14, "monthly_cumulative": 20, "avoided": 6,
               "projected_year": 32, "projected_monthly_cumulative": 48, "projected_avoided": 16}),
        "{whole}"
    );
    let a_status = status(&app, &a).await.0;
    assert_eq!(
        a_status["reboots"],
        json!({"year": 2025, "this_year": 2, "monthly_cumulative": 5, "avoided": 3,
               "projected_year": 4, "projected_monthly_cumulative": 12, "projected_avoided": 8}),
        "4 instead of 12: {a_status}"
    );
    let c_status = status(&app, &c).await.0;
    assert_eq!((&c_status["reboots"]["this_year"], &c_status["reboots"]["avoided"]), (&json!(5), &json!(0)));

    // The counts are those of each machine's own patch status.
    let mut statuses = std::collections::BTreeMap::new();
    for id in [&a, &b, &c, &d] {
        let s = status(&app, id).await.0["hotpatch"]["status"].as_str().unwrap().to_owned();
        *statuses.entry(s).or_insert(0) += 1;
    }
    for (s, n) in statuses {
        assert_eq!(whole["hotpatch_status"][&s], n, "{s}");
    }

    let cases = [
        (
            "region",
            json!([
                group(json!("eastus"), counts(2, [0, 0, 1, 1], [0, 0, 2], 0, 1)),
                group(json!("westeurope"), counts(2, [1, 1, 0, 0], [1, 1, 0], 1, 0)),
            ]),
        ),
        ("os", json!([group(json!("windows_server_2022"), counts(4, [1, 1, 1, 1], [1, 1, 2], 1, 1)),])),
        (
            "label:env",
            json!([
                group(json!("dev"), counts(1, [0, 0, 0, 1], [0, 0, 1], 0, 1)),
                group(json!("prod"), counts(2, [1, 0, 1, 0], [0, 1, 1], 0, 0)),
                group(json!(null), counts(1, [0, 1, 0, 0], [1, 0, 0], 1, 0)),
            ]),
        ),
    ];
    for (group_by, groups) in cases {
        let got = app.get(&format!("/v1/fleet/summary?group_by={group_by}"), ADMIN).await.ok(200).clone();
        assert_eq!(got["group_by"], group_by);
        assert_eq!(summary_of(&got), summary_of(&whole), "{group_by}: the whole fleet");
        let mut got_groups = got["groups"].clone();
        let mut reboots = 0;
        for g in got_groups.as_array_mut().unwrap() {
            reboots += g["reboots"]["this_year"].as_i64().unwrap();
            g.as_object_mut().unwrap().remove("reboots");
        }
        assert_eq!(got_groups, groups, "{group_by}");
        assert_eq!(reboots, 14, "{group_by}: the groups' reboots add up to the fleet's");
    }
    // A reader may read it.
    let reader = app.token("reader").await;
    app.get("/v1/fleet/summary?group_by=os", &reader).await.ok(200);
}

#[tokio::test]
async fn bad_parameters_are_400_problems() {
    let (app, _) = app_at(may_20()).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    let cases = [
        format!("/v1/machines/{id}/patch-status?at=yesterday"),
        format!("/v1/machines/{id}/patch-status?when=now"),
        "/v1/machines?include=everything".to_owned(),
        "/v1/machines?include=patch_status,history".to_owned(),
        "/v1/machines?include=patch_status&limit=0".to_owned(),
        "/v1/fleet/summary?group_by=zone".to_owned(),
        "/v1/fleet/summary?group_by=label:".to_owned(),
        "/v1/fleet/summary?group_by=label:Not%20A%20Key!".to_owned(),
        "/v1/fleet/summary?at=soon".to_owned(),
        "/v1/fleet/summary?groupby=os".to_owned(),
    ];
    for path in cases {
        let r = app.get(&path, ADMIN).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.body);
        r.problem(400, "validation_failed");
    }
    let agent = app.agent_token(&id).await;
    assert_eq!(
        app.get("/v1/fleet/summary", &agent).await.status.as_u16(),
        403,
        "agents may not read the fleet"
    );
}

/// The answer once `state`'s replica keeps it: notifications of the writes before may still be
/// coming in, and each drops it.
async fn kept(app: &TestApp, state: &AppState, id: &str) -> (Value, String) {
    let machine = id.parse().unwrap();
    eventually("the answer is kept", std::time::Duration::from_secs(5), || async {
        status(app, id).await;
        state.status_cache.get(machine, true).is_some()
    })
    .await;
    status(app, id).await
}

/// Two replicas on one database, each listening, at the same instant.
async fn two_replicas() -> (TestApp, AppState, TestApp, AppState, impl Drop) {
    let (a, a_state) = app_at(may_20()).await;
    // No automatic rollouts: a release published on B changes no machine's own rows.
    let settings = hotpatch_api::Settings { automatic_rollouts: false, ..Default::default() };
    let b_state = AppState::with_settings(a.pool.clone(), settings);
    let mut b_state = b_state;
    b_state.clock = Clock::manual(may_20());
    let b = a.replica(b_state.clone());
    let listening = (listen(&a, &a_state).await, listen(&b, &b_state).await);
    struct Stop<T>(Option<T>);
    impl<T> Drop for Stop<T> {
        fn drop(&mut self) {
            self.0.take();
        }
    }
    (a, a_state, b, b_state, Stop(Some(listening)))
}

#[tokio::test]
async fn a_kept_answer_is_served_until_another_replica_changes_the_machine() {
    let (a, a_state, b, _, _listening) = two_replicas().await;
    jan_to_may(&a).await;
    let id = a.machine_id(azure_2022("web-1")).await;
    let other = a.machine_id(azure_2022("web-2")).await;
    let (other_body, _) = kept(&a, &a_state, &other).await;
    let (body, etag) = kept(&a, &a_state, &id).await;
    let before = a_state.status_cache.stats();

    // Served from memory: the same answer, the same tag, 304 for it.
    assert_eq!(status(&a, &id).await, (body.clone(), etag.clone()));
    assert_eq!(conditional(&a, &status_path(&id), &etag).await, (304, etag.clone()));
    assert_eq!(a_state.status_cache.stats().hits, before.hits + 2);

    // Replica B turns hotpatch off: A hears it and computes the new answer.
    b.patch(&format!("/v1/machines/{id}"), ADMIN, json!({"hotpatch_enabled": false})).await.ok(200);
    eventually("replica A drops its answer", std::time::Duration::from_secs(5), || async {
        status(&a, &id).await.0["hotpatch"]["enabled"] == false
    })
    .await;
    let (new_body, new_etag) = status(&a, &id).await;
    assert_eq!(new_body, status(&b, &id).await.0, "both replicas give the same answer");
    assert_ne!(new_etag, etag);
    assert_eq!(conditional(&a, &status_path(&id), &etag).await.0, 200, "the old tag no longer matches");
    // The other machine's answer stayed kept.
    let hits = a_state.status_cache.stats().hits;
    assert_eq!(status(&a, &other).await.0, other_body);
    assert_eq!(a_state.status_cache.stats().hits, hits + 1);
}

#[tokio::test]
async fn a_release_published_on_another_replica_drops_every_kept_answer() {
    let (a, a_state, b, _, _listening) = two_replicas().await;
    jan_to_may(&a).await;
    let id = a.machine_id(azure_2022("web-1")).await;
    let (_, etag) = kept(&a, &a_state, &id).await;
    // June's hotpatch comes out on 2025-06-10: until then the answer is valid, so its tag changes.
    common::publish(&b, ws2022("hotpatch", true, "2025-06", "KB5060001")).await;
    let machine = id.parse().unwrap();
    eventually("replica A drops its answer", std::time::Duration::from_secs(5), || async {
        a_state.status_cache.get(machine, true).is_none()
    })
    .await;
    let (_, new_etag) = status(&a, &id).await;
    assert_ne!(new_etag, etag, "the catalog is part of the answer");
}

#[tokio::test]
async fn a_replica_that_lost_its_listen_connection_drops_what_it_kept() {
    let (a, a_state, _b, _, _listening) = two_replicas().await;
    jan_to_may(&a).await;
    let id = a.machine_id(azure_2022("web-1")).await;
    kept(&a, &a_state, &id).await;
    // Both replicas' LISTEN connections are cut; sqlx reconnects them.
    sqlx::query(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and query ilike '%listen%hotpatch_status%'",
    )
    .execute(&a.pool)
    .await
    .unwrap();
    let machine = id.parse().unwrap();
    eventually("replica A drops its answer", std::time::Duration::from_secs(10), || async {
        a_state.status_cache.get(machine, true).is_none()
    })
    .await;
}

#[tokio::test]
async fn without_its_listen_connection_a_replica_keeps_nothing() {
    let (app, state) = app_at(may_20()).await;
    jan_to_may(&app).await;
    let id = app.machine_id(azure_2022("web-1")).await;
    for _ in 0..3 {
        status(&app, &id).await;
    }
    let computed_each_time = hotpatch_app::status::cache::AnswerStats { misses: 3, ..Default::default() };
    assert_eq!(state.status_cache.stats(), computed_each_time);
}

#[tokio::test]
async fn a_list_with_patch_status_keeps_each_answer_for_the_polls_that_follow() {
    let (app, state) = app_at(may_20()).await;
    let _listening = listen(&app, &state).await;
    jan_to_may(&app).await;
    let ids = [app.machine_id(azure_2022("a")).await, app.machine_id(azure_2022("b")).await];
    // Notifications of the writes above may still come in and drop what the list keeps.
    eventually("the list keeps both answers", std::time::Duration::from_secs(5), || async {
        app.get("/v1/machines?include=patch_status", ADMIN).await.ok(200);
        ids.iter().all(|id| state.status_cache.get(id.parse().unwrap(), true).is_some())
    })
    .await;
    let page = app.get("/v1/machines?include=patch_status", ADMIN).await.ok(200).clone();
    let hits = state.status_cache.stats().hits;
    for item in page["items"].as_array().unwrap() {
        let path = status_path(item["id"].as_str().unwrap());
        let tag = item["patch_status_etag"].as_str().unwrap();
        assert_eq!(conditional(&app, &path, tag).await, (304, tag.to_owned()));
    }
    assert_eq!(state.status_cache.stats().hits, hits + 2, "both polls answered from memory");
}

#[tokio::test]
async fn an_empty_fleet_counts_no_reboots_in_the_current_year() {
    let (app, _) = app_at(may_20()).await;
    let summary = app.get("/v1/fleet/summary?group_by=os", ADMIN).await.ok(200).clone();
    assert_eq!(summary["machines"], 0);
    assert_eq!(
        summary["reboots"],
        json!({"year": 2025, "this_year": 0, "monthly_cumulative": 0, "avoided": 0,
               "projected_year": 0, "projected_monthly_cumulative": 0, "projected_avoided": 0})
    );
}

#[tokio::test]
async fn a_kept_machine_read_is_served_until_a_write_here_or_on_another_replica_changes_it() {
    let (a, a_state, b, _, _listening) = two_replicas().await;
    let id = a.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/machines/{id}");
    let machine = id.parse().unwrap();
    eventually("the read is kept", std::time::Duration::from_secs(5), || async {
        a.get(&path, ADMIN).await.ok(200);
        a_state.machine_cache.get(machine, true).is_some()
    })
    .await;
    let hits = a_state.machine_cache.stats().hits;
    let kept = a.get(&path, ADMIN).await.ok(200).clone();
    assert_eq!(a_state.machine_cache.stats().hits, hits + 1, "served from memory");
    assert_eq!(kept["name"], "web-1");

    // A write through this replica is seen by the very next read.
    a.patch(&path, ADMIN, json!({"labels": {"tier": "web"}})).await.ok(200);
    assert_eq!(a.get(&path, ADMIN).await.ok(200)["labels"]["tier"], "web");

    // A write through another replica reaches this one's memory by notification.
    b.patch(&path, ADMIN, json!({"labels": {"tier": "db"}})).await.ok(200);
    eventually("replica A drops its read", std::time::Duration::from_secs(5), || async {
        a.get(&path, ADMIN).await.ok(200)["labels"]["tier"] == "db"
    })
    .await;
    b.delete(&path, ADMIN).await;
    eventually("replica A forgets the deleted machine", std::time::Duration::from_secs(5), || async {
        a.get(&path, ADMIN).await.status == 404
    })
    .await;
}
