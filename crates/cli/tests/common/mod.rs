//! The API on a loopback port over a fresh database, and `hotpatchctl` run against it in this
//! process: what the CLI's tests share.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use clap::Parser as _;
use hotpatch_api::{router, AppState};
use hotpatch_cli::{Cli, CliError, Format, Out};
use serde_json::{json, Value};

pub const ADMIN: &str = "cli-test-admin-token-0123456789abcdef0123";

/// The API on a loopback port, over its own database.
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
    _db: hotpatch_store::testing::TestDb,
}

impl Api {
    pub async fn start() -> Api {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(AppState::new(db.pool.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Api { url, http: reqwest::Client::new(), _db: db }
    }

    pub async fn call(
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

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    pub async fn machine(&self, name: &str) -> String {
        let spec = json!({
            "name": name, "platform": "azure_vm", "os": "windows_server_2022",
            "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                      "sku": "2022-datacenter-azure-edition-hotpatch"},
            "region": "westeurope", "timezone": "Europe/Berlin", "hotpatch_enabled": true
        });
        self.post("/v1/machines", ADMIN, spec).await["id"].as_str().unwrap().to_owned()
    }

    /// `hotpatchctl -o json <args>` as the admin: what it returned, and its stdout as JSON.
    pub async fn ctl(&self, args: &[&str]) -> (Result<(), CliError>, Value) {
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

impl Api {
    /// `hotpatchctl <args>` as the admin (table output unless `args` say `-o json`): what it
    /// returned, and its stdout.
    pub async fn ctl_table(&self, args: &[&str]) -> (Result<(), CliError>, String) {
        let mut argv = vec!["hotpatchctl", "--url", &self.url, "--token", ADMIN];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let buf = Buf::default();
        let mut out = Out::to_writer(cli.output, Box::new(buf.clone()));
        let result = hotpatch_cli::run(cli, &mut out).await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (result, text)
    }

    /// `hotpatchctl -o json <args>` as the admin, which must succeed: its stdout as JSON.
    pub async fn ok(&self, args: &[&str]) -> Value {
        let (result, value) = self.ctl(args).await;
        result.unwrap_or_else(|e| panic!("hotpatchctl {args:?}: {e}"));
        value
    }
}

/// A stdout the test reads back.
#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
