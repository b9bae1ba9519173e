//! `hotpatchctl` against the real API, served in this process over a fresh database: assessing
//! with `--skip-disconnected --wait`, machines by name, tokens by role and kind (issue 20).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use clap::Parser as _;
use common::{Api, Buf, ADMIN};
use hotpatch_cli::{Cli, Format, Out};
use serde_json::{json, Value};

#[tokio::test]
async fn assess_wait_with_skip_disconnected_waits_only_for_machines_whose_agent_is_connected() {
    let api = Api::start().await;
    let online = api.machine("online").await;
    api.machine("offline").await;
    let agent = api.post(&format!("/v1/machines/{online}/agent-token"), ADMIN, json!({})).await;
    let agent = agent["token"].as_str().unwrap().to_owned();
    // Its first call makes the agent connected.
    let (status, _) = api.call(reqwest::Method::POST, "/v1/agent/jobs/claim?wait=0", &agent, None).await;
    assert_eq!(status, 204);

    let ctl = api.ctl(&["assess", "--fleet", "--skip-disconnected", "--wait", "--timeout", "60"]);
    let run_agent = async {
        loop {
            let (status, job) =
                api.call(reqwest::Method::POST, "/v1/agent/jobs/claim?wait=5", &agent, None).await;
            if status == 200 {
                let result = json!({"lease_id": job["lease"]["id"], "outcome": "succeeded"});
                api.post(&format!("/v1/agent/jobs/{}/result", job["id"].as_str().unwrap()), &agent, result)
                    .await;
                return;
            }
        }
    };
    let ((result, op), ()) = tokio::join!(ctl, run_agent);
    result.unwrap();
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["machines"]["total"], 1, "the machine without an agent was left out: {op}");
}

#[tokio::test]
async fn machines_get_takes_a_name_or_an_id_and_list_filters_by_name() {
    let api = Api::start().await;
    let web = api.machine("web-01").await;
    api.machine("web-02").await;
    api.machine("db-01").await;

    let (r, by_name) = api.ctl(&["machines", "get", "web-01"]).await;
    r.unwrap();
    assert_eq!(by_name["id"], web.as_str());
    let (r, by_id) = api.ctl(&["machines", "get", &web]).await;
    r.unwrap();
    assert_eq!(by_id, by_name);
    let (r, _) = api.ctl(&["machines", "get", "web-03"]).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.to_string(), e.exit_code()),
        ("404 not_found: no machine named 'web-03'".to_owned(), 3.into())
    );

    let (r, page) = api.ctl(&["machines", "list", "--name", "web-*"]).await;
    r.unwrap();
    let mut names: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["web-01", "web-02"]);
}

#[tokio::test]
async fn tokens_list_filters_by_role_and_kind() {
    let api = Api::start().await;
    let ci = api.post("/v1/tokens", ADMIN, json!({"name": "pipeline", "role": "ci"})).await;
    api.post("/v1/tokens", ADMIN, json!({"name": "viewer", "role": "reader"})).await;
    let machine = api.machine("web-1").await;
    api.post(&format!("/v1/machines/{machine}/agent-token"), ADMIN, json!({})).await;

    let (r, page) = api.ctl(&["tokens", "list", "--role", "ci"]).await;
    r.unwrap();
    let ids: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, [&ci["id"]]);
    let (r, page) = api.ctl(&["tokens", "list", "--kind", "agent"]).await;
    r.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!((items.len(), items[0]["machine_id"].as_str()), (1, Some(machine.as_str())));
    let (r, _) = api.ctl(&["tokens", "list", "--kind", "person"]).await;
    assert_eq!(r.unwrap_err().exit_code(), 3.into(), "the server refuses an unknown kind");
}

#[tokio::test]
async fn operations_list_and_cancel() {
    let api = Api::start().await;
    let machine = api.machine("no-agent").await;
    let op = api.post(&format!("/v1/machines/{machine}/install"), ADMIN, json!({})).await;
    let (r, page) = api.ctl(&["operations", "list", "--kind", "install", "--status", "queued"]).await;
    r.unwrap();
    assert_eq!(page["items"][0]["id"], op["id"]);
    let id = op["id"].as_str().unwrap();
    let (r, canceled) = api.ctl(&["operations", "cancel", id]).await;
    r.unwrap();
    assert_eq!(canceled["status"], "canceled");
    let (r, _) = api.ctl(&["operations", "cancel", id]).await;
    let e = r.unwrap_err();
    assert!(e.to_string().starts_with("409 conflict: "), "{e}");
}

#[tokio::test]
async fn rollouts_start_watch_prints_the_rollout_id_first() {
    let api = Api::start().await;
    api.machine("web-1").await;
    let release = api
        .post(
            "/v1/releases",
            ADMIN,
            json!({"os": "windows_server_2022", "kind": "baseline", "planned": true, "month": "2025-01",
                   "kb": "KB5000001", "build": "20348.3000", "released_at": "2025-01-14T18:00:00Z"}),
        )
        .await;
    let release = release["id"].as_str().unwrap();
    // In a table: the id is stdout's first line, before any watching (here cut short at once).
    let argv = [
        "hotpatchctl",
        "--url",
        &api.url,
        "--token",
        ADMIN,
        "rollouts",
        "start",
        "--release",
        release,
        "--watch",
        "--timeout",
        "0",
    ];
    let buf = Buf::default();
    let mut out = Out::to_writer(Format::Table, Box::new(buf.clone()));
    let result = hotpatch_cli::run(Cli::try_parse_from(argv).unwrap(), &mut out).await;
    assert!(result.is_err(), "the watch gave up at once: {result:?}");
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let id = first
        .strip_prefix("rollout ")
        .and_then(|r| r.strip_suffix(" started"))
        .unwrap_or_else(|| panic!("{text}"));
    let (status, rollout) = api.call(reqwest::Method::GET, &format!("/v1/rollouts/{id}"), ADMIN, None).await;
    assert_eq!((status, rollout["release_id"].as_str()), (200, Some(release)));
}
