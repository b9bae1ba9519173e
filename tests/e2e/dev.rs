//! `hotpatchd dev`: one command, and a simulated fleet's rollout goes through real maintenance
//! windows on a fast clock, visible in the API and the metrics.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hotpatch_e2e::Launch;
use serde_json::Value;

#[tokio::test]
async fn dev_starts_a_demo_whose_automatic_rollout_advances_wave_by_wave() {
    let dir = tempfile::tempdir().unwrap();
    let dev_dir = dir.path().join("dev");
    // The README's command, with a smaller fleet: the default speed and batch size.
    let server = Launch::new(dir.path())
        .args(&["dev", "--data-dir", dev_dir.to_str().unwrap(), "--machines", "24"])
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

    // The October baseline comes out a few seconds after the clock starts; its automatic
    // rollout installs batch after batch as the machines' windows open, wave after wave. (A
    // bound against hanging, not a speed check: the README's figure is measured by hand.)
    let started = Instant::now();
    let (id, detail) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no second wave within 300 s:\n{}",
            server.output()
        );
        let rollouts = get("/v1/rollouts".to_owned()).await;
        let mut found = None;
        for r in rollouts["items"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap().to_owned();
            let detail = get(format!("/v1/rollouts/{id}")).await;
            assert_eq!(detail["automatic"], true, "{detail}");
            if wave_done(&detail, 1) && wave_started(&detail, 2) {
                found = Some((id, detail));
                break;
            }
        }
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(detail["counts"]["failed"], 0, "{detail}");
    let clock = get("/v1/admin/clock".to_owned()).await;
    assert_eq!(clock["controllable"], false, "the demo's clock runs by itself");
    let machines = get("/v1/machines?label=sim:dev&limit=100".to_owned()).await;
    assert_eq!(machines["items"].as_array().unwrap().len(), 24);
    let output = server.output();
    assert!(output.contains("hotpatchd dev: a demo with 24 simulated machines"), "{output}");
    assert!(output.contains("dev: release out; its rollout starts"), "{output}");
    assert!(output.contains(" installed, 0 failed;"), "the progress lines: {output}");

    // The same progress through the CLI, the change feed and the metrics.
    let shown = crate::cli::ctl(&server, &token, &["rollouts", "get", &id]).await.ok();
    assert!(shown.stdout.contains("succeeded"), "{shown:?}");
    let batch_succeeded =
        feed_until(&server, &token, |e| e["batch_state"] == "succeeded" && e["wave"] == 1).await;
    assert_eq!(batch_succeeded["rollout_id"], id.as_str());
    let metrics = server.http().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let succeeded = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hotpatch_rollout_machines{state=\"succeeded\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no succeeded rollout machines in the metrics:\n{metrics}"));
    assert!(succeeded >= 1.0, "{metrics}");
    assert!(metrics.contains("/v1/agent/jobs/claim"), "agents' claims are in the metrics");

    let (status, _) = server.terminate().await;
    assert!(status.success(), "stops cleanly on SIGTERM");
    assert!(dev_dir.join("dev-clock").exists(), "the clock is kept for the next start");
}

/// The batches of `wave` in a rollout's detail.
fn batches_of(detail: &Value, wave: i64) -> Vec<&Value> {
    detail["waves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["wave"] == wave)
        .flat_map(|w| w["batches"].as_array().unwrap())
        .collect()
}

/// Every batch of `wave` succeeded.
fn wave_done(detail: &Value, wave: i64) -> bool {
    let batches = batches_of(detail, wave);
    !batches.is_empty() && batches.iter().all(|b| b["state"] == "succeeded")
}

/// A batch of `wave` opened (or is done already).
fn wave_started(detail: &Value, wave: i64) -> bool {
    batches_of(detail, wave).iter().any(|b| b["state"] == "open" || b["state"] == "succeeded")
}

/// The first `rollout.progressed` event of the change feed (replayed from its start) that `want`
/// accepts; its data.
async fn feed_until(server: &hotpatch_e2e::Server, token: &str, want: impl Fn(&Value) -> bool) -> Value {
    let mut response = server
        .http()
        .get(server.url("/v1/events?after=0&types=rollout.progressed"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            for line in text.lines().filter_map(|l| l.strip_prefix("data:")) {
                if let Ok(event) = serde_json::from_str::<Value>(line.trim()) {
                    if want(&event) {
                        return Some(event);
                    }
                }
            }
        }
        None
    };
    let found = tokio::time::timeout(Duration::from_secs(30), read).await;
    found.ok().flatten().expect("the change feed replays the wave's succeeded batches")
}
