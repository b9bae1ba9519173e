//! `hotpatchctl` against the real API, served in this process over a fresh database: assessing
//! with `--skip-disconnected --wait`, machines by name, tokens by role and kind (issue 20).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use clap::Parser as _;
use hotpatch_api::{router, AppState};
use hotpatch_cli::{Cli, CliError, Format, Out};
use serde_json::{json, Value};

const ADMIN: &str = "cli-test-admin-token-0123456789abcdef0123";

/// The API on a loopback port, over its own database.
struct Api {
    url: String,
    http: reqwest::Client,
    _db: hotpatch_store::testing::TestDb,
}

impl Api {
    async fn start() -> Api {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(AppState::new(db.pool.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Api { url, http: reqwest::Client::new(), _db: db }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    async fn machine(&self, name: &str) -> String {
        let spec = json!({
            "name": name, "platform": "azure_vm", "os": "windows_server_2022",
            "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                      "sku": "2022-datacenter-azure-edition-hotpatch"},
            "region": "westeurope", "timezone": "Europe/Berlin", "hotpatch_enabled": true
        });
        self.post("/v1/machines", ADMIN, spec).await["id"].as_str().unwrap().to_owned()
    }

    /// `hotpatchctl -o json <args>` as the admin: what it returned, and its stdout as JSON.
    async fn ctl(&self, args: &[&str]) -> (Result<(), CliError>, Value) {
        let mut argv = vec!["hotpatchctl", "--url", &self.url, "--token", ADMIN, "-o", "json"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let buf = Buf::default();
        let mut out = Out::to_writer(Format::Json, Box::new(buf.clone()));
        let result = hotpatch_cli::run(cli, &mut out).await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (result, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A stdout the test reads back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
