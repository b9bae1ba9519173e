//! `hotpatchd dev`: one command, and a simulated fleet's rollout goes through real maintenance
//! windows on a fast clock, visible in the API and the metrics.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hotpatch_e2e::Launch;
use serde_json::Value;

#[tokio::test]
async fn dev_starts_a_demo_whose_automatic_rollout_installs_through_windows() {
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().join("dev");
    let server = Launch::new(dir.path())
        .args(&["dev", "--data-dir", dev_dir.to_str().unwrap(), "--machines", "24", "--speed", "3600"])
        .start()
        .await;
    let token = std::fs::read_to_string(dev_dir.join("admin-token")).unwrap().trim().to_owned();
    let get = |path: String| {
        let request = server.http().get(server.url(&path)).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };

    // The October baseline comes out about 30 s after the clock starts; its automatic rollout
    // then installs batch after batch as the machines' windows open.
    let started = Instant::now();
    let installed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no install within 180 s:\n{}",
            server.output()
        );
        let rollouts = get("/v1/rollouts".to_owned()).await;
        if let Some(id) = rollouts["items"].get(0).and_then(|r| r["id"].as_str()) {
            let detail = get(format!("/v1/rollouts/{id}")).await;
            assert_eq!(detail["automatic"], true, "{detail}");
            let succeeded = detail["counts"]["succeeded"].as_i64().unwrap();
            if succeeded >= 2 {
                break detail;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(installed["counts"]["failed"], 0, "{installed}");
    let clock = get("/v1/admin/clock".to_owned()).await;
    let now: chrono::DateTime<chrono::Utc> = clock["now"].as_str().unwrap().parse().unwrap();
    assert!(
        now > "2025-10-14T18:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap(),
        "the clock ran past the release: {clock}"
    );
    assert_eq!(clock["controllable"], false, "the demo's clock runs by itself");
    let machines = get("/v1/machines?label=sim:dev&limit=100".to_owned()).await;
    assert_eq!(machines["items"].as_array().unwrap().len(), 24);
    let output = server.output();
    assert!(output.contains("hotpatchd dev: a demo with 24 simulated machines"), "{output}");
    assert!(output.contains("dev: release out; its rollout starts"), "{output}");

    let metrics = server.http().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("/v1/agent/jobs/claim"), "agents' claims are in the metrics");
    let (status, _) = server.terminate().await;
    assert!(status.success(), "stops cleanly on SIGTERM");
    assert!(dev_dir.join("dev-clock").exists(), "the clock is kept for the next start");
}
