//! The commands of issue 20 against the real API, served in this process over a fresh database:
//! maintenance configurations, webhooks, regions and their pairs, the fleet summary, the change
//! feed, calendar feeds.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Api, ADMIN};
use serde_json::{json, Value};

/// A JSON file with `value`, removed when dropped.
struct JsonFile(std::path::PathBuf);

impl JsonFile {
    fn new(value: &Value) -> JsonFile {
        let path = std::env::temp_dir().join(format!("hotpatchctl-test-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, value.to_string()).unwrap();
        JsonFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for JsonFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn maintenance_configurations_are_created_shown_with_their_windows_updated_and_deleted() {
    let api = Api::start().await;
    // Sundays 02:30 in Berlin: the end of March has a night without 02:30.
    let spec = JsonFile::new(&json!({
        "name": "sundays", "recurrence": {"frequency": "weekly", "days_of_week": ["sunday"]},
        "start_time": "02:30", "duration": "PT2H", "timezone": "Europe/Berlin"
    }));
    let created = api.ok(&["maintenance", "create", "--file", spec.path()]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("02:30")),
        "the DST warning: {created}"
    );
    let (r, table) = api.ctl_table(&["maintenance", "create", "--file", spec.path()]).await;
    assert_eq!(r.unwrap_err().exit_code(), 3.into(), "the name is taken");
    assert!(table.is_empty());

    assert_eq!(ids(&api.ok(&["maintenance", "list"]).await), [id.as_str()]);
    let shown = api.ok(&["maintenance", "get", &id, "--windows", "3"]).await;
    let windows = shown["next_windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3);
    assert!(windows.iter().all(|w| w["timezone"] == "Europe/Berlin"));
    let (r, table) = api.ctl_table(&["maintenance", "get", &id]).await;
    r.unwrap();
    assert!(table.contains("weekly on sunday") && table.contains("START (UTC)"), "{table}");

    let patch = JsonFile::new(&json!({"start_time": "04:00"}));
    let updated = api.ok(&["maintenance", "update", &id, "--file", patch.path()]).await;
    assert_eq!(updated["start_time"], "04:00");
    let w = api.ok(&["maintenance", "windows", &id, "--from", "2025-06-01T00:00:00Z", "--count", "1"]).await;
    assert_eq!(w["items"][0]["start"], "2025-06-01T02:00:00Z", "Sunday 1 June, 04:00 CEST");
    let (r, ics) = api.ctl_table(&["maintenance", "windows", &id, "--ics", "--count", "2"]).await;
    r.unwrap();
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 2);

    api.ok(&["maintenance", "delete", &id]).await;
    let (r, _) = api.ctl(&["maintenance", "get", &id]).await;
    assert!(r.unwrap_err().to_string().starts_with("404 not_found"));
}

#[tokio::test]
async fn webhooks_are_created_changed_tested_listed_with_their_deliveries_and_deleted() {
    let api = Api::start().await;
    let created = api
        .ok(&[
            "webhooks",
            "create",
            "--endpoint",
            "https://hooks.invalid/hotpatch",
            "--event",
            "rollout.halted",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().is_some_and(|s| !s.is_empty()), "the secret, once: {created}");

    let updated = api
        .ok(&[
            "webhooks",
            "update",
            &id,
            "--event",
            "operation.finished",
            "--event",
            "agent.lost",
            "--description",
            "pager",
        ])
        .await;
    assert_eq!(updated["event_types"], json!(["agent.lost", "operation.finished"]), "sorted, replaced");
    assert_eq!(updated["description"], "pager");
    let (r, _) = api.ctl(&["webhooks", "update", &id]).await;
    assert_eq!(r.unwrap_err().exit_code(), 2.into(), "nothing to change");
    let cleared = api.ok(&["webhooks", "update", &id, "--clear-description"]).await;
    assert_eq!(cleared["description"], Value::Null);

    let listed = api.ok(&["webhooks", "list"]).await;
    assert_eq!(ids(&listed), [id.as_str()]);
    assert!(listed["items"][0].get("secret").is_none_or(Value::is_null), "never listed with its secret");
    let (r, table) = api.ctl_table(&["webhooks", "list"]).await;
    r.unwrap();
    assert!(table.starts_with("ID ") && table.contains("https://hooks.invalid/hotpatch"), "{table}");

    // `.invalid` never resolves: the test event is not delivered, and the exit code says so.
    let (r, answer) = api.ctl(&["webhooks", "test", &id]).await;
    assert_eq!(answer["delivered"], false, "{answer}");
    assert_eq!(r.unwrap_err().exit_code(), 1.into());

    assert_eq!(api.ok(&["webhooks", "deliveries", &id]).await["items"], json!([]));
    let missing = uuid::Uuid::now_v7().to_string();
    let (r, _) = api.ctl(&["webhooks", "redeliver", &id, &missing]).await;
    assert!(r.unwrap_err().to_string().starts_with("404 not_found"));

    api.ok(&["webhooks", "delete", &id]).await;
    assert_eq!(api.ok(&["webhooks", "list"]).await["items"], json!([]));
}

#[tokio::test]
async fn regions_are_set_and_read_and_pairs_added_listed_and_removed() {
    let api = Api::start().await;
    let set = api.ok(&["regions", "set", "norwayeast", "--ws2025-azure-edition", "true"]).await;
    assert_eq!(set["windows_server_2025_azure_edition"], true);
    assert_eq!(api.ok(&["regions", "get", "norwayeast"]).await["name"], "norwayeast");
    let names: Vec<Value> = api.ok(&["regions", "list"]).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert!(names.contains(&json!("norwayeast")) && names.contains(&json!("uksouth")), "{names:?}");

    let pair = api.ok(&["regions", "pairs", "add", "norwaywest", "norwayeast"]).await;
    assert_eq!(pair, json!({"region_a": "norwayeast", "region_b": "norwaywest"}));
    let pairs = api.ok(&["regions", "pairs", "list"]).await;
    assert!(pairs["items"].as_array().unwrap().contains(&pair));
    let (r, table) = api.ctl_table(&["regions", "pairs", "list"]).await;
    r.unwrap();
    assert!(table.lines().any(|l| l.split_whitespace().eq(["norwayeast", "norwaywest"])), "{table}");
    api.ok(&["regions", "pairs", "remove", "norwayeast", "norwaywest"]).await;
    let (r, _) = api.ctl(&["regions", "pairs", "remove", "norwayeast", "norwaywest"]).await;
    assert!(r.unwrap_err().to_string().starts_with("404 not_found"));
    let (r, _) = api.ctl(&["regions", "pairs", "add", "uksouth", "uksouth"]).await;
    assert!(r.unwrap_err().to_string().starts_with("422 validation_failed"));
}

#[tokio::test]
async fn the_fleet_summary_counts_by_group_with_the_years_reboots() {
    let api = Api::start().await;
    api.machine("web-1").await;
    api.machine("web-2").await;
    let s = api.ok(&["fleet", "summary", "--group-by", "region"]).await;
    assert_eq!(s["machines"], 2);
    assert_eq!(s["groups"][0]["key"], "westeurope");
    assert_eq!(s["groups"][0]["machines"], 2);
    assert!(s["reboots"]["projected_year"].as_i64().is_some(), "{s}");
    let (r, table) = api.ctl_table(&["fleet", "summary", "--group-by", "os"]).await;
    r.unwrap();
    let all = table.lines().find(|l| l.starts_with("all ")).unwrap_or_else(|| panic!("{table}"));
    assert!(all.split_whitespace().nth(1) == Some("2"), "{table}");
    assert!(table.contains("windows_server_2022") && table.contains("projected avoided"), "{table}");
    let (r, _) = api.ctl(&["fleet", "summary", "--group-by", "colour"]).await;
    assert!(r.unwrap_err().to_string().starts_with("400 validation_failed"));
}

#[tokio::test]
async fn events_tail_replays_from_an_id_filtered_by_type() {
    let api = Api::start().await;
    for name in ["web-1", "web-2"] {
        // An install no agent takes, canceled: an `operation.finished` event (the machine's
        // registration makes events of other types).
        let machine = api.machine(name).await;
        let op = api.post(&format!("/v1/machines/{machine}/install"), ADMIN, json!({})).await;
        api.post(&format!("/v1/operations/{}/cancel", op["id"].as_str().unwrap()), ADMIN, json!({})).await;
    }
    let (r, text) = api
        .ctl_table(&["events", "tail", "--since", "0", "--type", "operation.finished", "--count", "2"])
        .await;
    r.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.contains("  operation.finished  ")), "{text}");
    let first: i64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();

    // From the first one on: only the second, as a JSON line.
    let since = first.to_string();
    let args =
        ["-o", "json", "events", "tail", "--since", &since, "--type", "operation.finished", "--count", "1"];
    let (r, text) = api.ctl_table(&args).await;
    r.unwrap();
    let event: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(
        (event["type"].as_str(), event["id"].as_i64() > Some(first)),
        (Some("operation.finished"), true)
    );
    let (r, _) = api.ctl(&["events", "tail", "--type", "machine.exploded", "--count", "1"]).await;
    assert!(r.unwrap_err().to_string().starts_with("400 validation_failed"));
}

#[tokio::test]
async fn calendar_feeds_are_created_read_without_a_token_listed_and_revoked() {
    let api = Api::start().await;
    let machine = api.machine("web-1").await;
    let feed = api.ok(&["calendar", "feeds", "create", "--machine", &machine]).await;
    let url = feed["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/v1/feeds/", api.url)), "the whole URL: {url}");

    // A calendar app: no Authorization header.
    let served = api.http.get(&url).send().await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert!(served.text().await.unwrap().contains("BEGIN:VEVENT"));

    let id = feed["id"].as_str().unwrap();
    assert_eq!(ids(&api.ok(&["calendar", "feeds", "list"]).await), [id]);
    api.ok(&["calendar", "feeds", "revoke", id]).await;
    assert_eq!(api.http.get(&url).send().await.unwrap().status().as_u16(), 404);
    assert_eq!(api.ok(&["calendar", "feeds", "list"]).await["items"], json!([]));
    let (r, _) = api.ctl(&["calendar", "feeds", "create", "--configuration", &machine]).await;
    assert!(r.unwrap_err().to_string().starts_with("422 validation_failed"), "not a configuration's id");
}
