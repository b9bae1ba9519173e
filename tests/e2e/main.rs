//! End-to-end tests: the real `hotpatchd` binary, real PostgreSQL, HTTP only.

mod admin_token;
mod agents;
mod cli;
mod command_agent;
mod config_file;
mod database_url;
mod dev;
mod embedded;
mod fresh_db;
mod rollouts;
mod shutdown;
mod simulated_catalog;
mod traces;

use hotpatch_e2e::Server;
use serde_json::{json, Value};

/// A machine that can be hotpatched (DESIGN §3), named `name`.
fn machine(name: &str) -> Value {
    json!({
        "name": name,
        "platform": "azure_vm",
        "os": "windows_server_2022",
        "image": {
            "publisher": "MicrosoftWindowsServer",
            "offer": "WindowsServer",
            "sku": "2022-datacenter-azure-edition-hotpatch"
        },
        "region": "westeurope",
        "timezone": "Europe/Berlin",
        "hotpatch_enabled": true
    })
}

/// Registers a machine; returns its id.
async fn register(server: &Server, token: &str, name: &str) -> String {
    let response = server
        .http()
        .post(server.url("/v1/machines"))
        .bearer_auth(token)
        .json(&machine(name))
        .send()
        .await
        .expect("POST /v1/machines");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 201, "POST /v1/machines {name}: {body}");
    body["id"].as_str().expect("an id").to_owned()
}

/// `(id, name)` of every machine, sorted by name.
async fn machines(server: &Server, token: &str) -> Vec<(String, String)> {
    let response = server
        .http()
        .get(server.url("/v1/machines?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v1/machines");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(status, 200, "GET /v1/machines: {body}");
    let mut list: Vec<(String, String)> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default().to_owned(),
                m["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    list.sort_by(|a, b| a.1.cmp(&b.1));
    list
}
