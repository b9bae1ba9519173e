//! A simulated fleet that starts from the release catalog: `hotpatch-agent simulate` reads the
//! sample catalog from `hotpatchd`, so its machines report catalog KBs and builds; the server
//! places them in the cycle (some a cycle behind), and installing the current release makes
//! every one of them compliant.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hotpatch_e2e::{start_fresh, AgentProcess, Server, Started};
use serde_json::{json, Value};

const MACHINES: usize = 12;
const PREFIX: &str = "cat";

async fn call(token: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
    let response = req.bearer_auth(token).send().await.expect("a response");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let (status, body) = call(token, server.http().get(server.url(path))).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Starts an operation with `POST path`; returns its id.
async fn start(server: &Server, token: &str, path: &str, body: Value) -> String {
    let (status, op) = call(token, server.http().post(server.url(path)).json(&body)).await;
    assert_eq!(status, 202, "POST {path}: {op}");
    op["id"].as_str().expect("an operation id").to_owned()
}

/// Waits for the operations to succeed.
async fn succeed(server: &Server, token: &str, ids: &[String], fleet: &AgentProcess) {
    let started = Instant::now();
    for id in ids {
        loop {
            let op = get(server, token, &format!("/v1/operations/{id}?wait=30")).await;
            match op["status"].as_str().unwrap_or_default() {
                "succeeded" => break,
                "failed" | "canceled" => panic!("operation {id} ended: {op}\n{}", fleet.output()),
                _ => assert!(started.elapsed() < Duration::from_secs(120), "{op}\n{}", fleet.output()),
            }
        }
    }
}

/// Publishes the sample catalog's releases in file order.
async fn publish_sample_catalog(server: &Server, token: &str) -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog/sample.json");
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let releases = sample["releases"].as_array().expect("releases").clone();
    for r in &releases {
        let (status, body) = call(token, server.http().post(server.url("/v1/releases")).json(r)).await;
        assert_eq!(status, 201, "{r}: {body}");
    }
    releases
}

/// The sample catalog's current release of `os`: its newest release of `kind`.
fn newest<'a>(releases: &'a [Value], os: &str, kind: &str) -> &'a Value {
    releases
        .iter()
        .filter(|r| r["os"] == os && r["kind"] == kind)
        .max_by_key(|r| r["month"].as_str())
        .unwrap()
}

#[tokio::test]
async fn a_simulated_fleet_from_the_catalog_becomes_compliant_once_it_installs_the_current_release() {
    let Started { server, token, dir: _dir, db: _db } =
        start_fresh(&[("HOTPATCH_AUTOMATIC_ROLLOUTS", "false")]).await;
    let releases = publish_sample_catalog(&server, &token).await;
    let base = server.url("");
    let machines = MACHINES.to_string();
    let mut fleet = AgentProcess::start(&[
        "simulate",
        "--server",
        &base,
        "--token",
        &token,
        "--machines",
        &machines,
        "--prefix",
        PREFIX,
        "--job-duration-ms",
        "20",
        "--reboot-ms",
        "50",
        "--wait",
        "5",
        "--seed",
        "3",
    ]);
    fleet.wait_for(&format!("simulate: ready {MACHINES} machines"), Duration::from_secs(120)).await;
    let selector = json!({ "labels": { "sim": PREFIX } });
    let assessed = start(&server, &token, "/v1/assessments", selector.clone()).await;
    succeed(&server, &token, &[assessed], &fleet).await;

    let list = get(&server, &token, &format!("/v1/machines?label=sim:{PREFIX}&limit=1000")).await;
    let ids: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), MACHINES);
    let mut oses = std::collections::BTreeSet::new();
    for id in &ids {
        let ps = get(&server, &token, &format!("/v1/machines/{id}/patch-status")).await;
        let kb = ps["current_baseline"]["kb"].as_str().unwrap_or_else(|| panic!("on no baseline: {ps}"));
        assert!(releases.iter().any(|r| r["kb"] == kb && r["kind"] == "baseline"), "{ps}");
        oses.insert(ps["os_build"].as_str().unwrap().split('.').next().unwrap().to_owned());
    }
    assert_eq!(oses.len(), 2, "both Windows Server 2022 and 2025 machines: {oses:?}");
    // The fleet is mixed: some machines a cycle behind, some without the latest hotpatch.
    let before = get(&server, &token, "/v1/fleet/summary").await;
    assert_eq!(before["machines"], MACHINES, "{before}");
    assert_eq!(before["compliance"]["unknown"], 0, "{before}");
    assert!(before["hotpatch_status"]["needs_baseline"].as_i64().unwrap() > 0, "{before}");
    assert!(before["hotpatch_status"]["enabled"].as_i64().unwrap() > 0, "{before}");
    assert!(before["compliance"]["non_compliant"].as_i64().unwrap() > 0, "{before}");

    // Install now, twice: a machine a cycle behind installs the current baseline (and reboots)
    // first, its hotpatch next; one on the current baseline installs the hotpatch at once.
    for _ in 0..2 {
        let mut operations = Vec::new();
        for id in &ids {
            operations.push(start(&server, &token, &format!("/v1/machines/{id}/install"), json!({})).await);
        }
        succeed(&server, &token, &operations, &fleet).await;
    }

    let after = get(&server, &token, "/v1/fleet/summary").await;
    assert_eq!(after["compliance"]["compliant"], MACHINES, "{after}");
    assert_eq!(after["hotpatch_status"]["enabled"], MACHINES, "{after}");
    assert_eq!(after["hotpatch_status"]["needs_baseline"], 0, "{after}");
    assert_eq!(after["reboot_pending"], 0, "{after}");
    for id in &ids {
        let ps = get(&server, &token, &format!("/v1/machines/{id}/patch-status")).await;
        assert_eq!(ps["hotpatch"]["status"], "enabled", "{ps}");
        let os = if ps["os_build"].as_str().unwrap().starts_with("20348.") {
            "windows_server_2022"
        } else {
            "windows_server_2025"
        };
        let (baseline, hotpatch) = (newest(&releases, os, "baseline"), newest(&releases, os, "hotpatch"));
        assert_eq!(ps["current_baseline"]["kb"], baseline["kb"], "{ps}");
        assert_eq!(ps["latest_installed"]["kb"], hotpatch["kb"], "{ps}");
        assert_eq!(ps["os_build"], hotpatch["build"], "{ps}");
        assert_eq!(ps["cycle"]["next_release"], Value::Null, "{ps}");
        assert_eq!(ps["recommended_updates"], json!([]), "{ps}");
    }
    let (status, _) = fleet.terminate().await;
    assert!(status.is_some_and(|s| s.success()), "the simulator did not stop cleanly");
}
