//! Router tests: the real router over a fresh database, driven with `oneshot`.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use hotpatch_api::{router, AppState};
use hotpatch_store::PgPool;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// The bootstrap admin token every test app starts with.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef0123456789";

pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    /// Keeps the test database alive (it is dropped with the app).
    pub db: hotpatch_store::testing::TestDb,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts a problem+json answer with this status and code, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json", "content type");
        assert_eq!(self.body["code"], code, "code; body: {}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "detail present");
        &self.body
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.body);
        &self.body
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        TestApp { router: router(AppState::new(db.pool.clone())), pool: db.pool.clone(), db }
    }

    /// Sends a request; `body` is JSON unless `None`.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// A new token of `role` created by the admin.
    pub async fn token(&self, role: &str) -> String {
        let r = self.post("/v1/tokens", ADMIN, json!({"name": format!("{role} token"), "role": role})).await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// Registers a machine and returns its JSON.
    pub async fn machine(&self, spec: Value) -> Value {
        self.post("/v1/machines", ADMIN, spec).await.ok(201).clone()
    }
}

/// A supported Windows Server 2022 Azure VM with hotpatch on.
pub fn azure_2022(name: &str) -> Value {
    json!({
        "name": name,
        "platform": "azure_vm",
        "os": "windows_server_2022",
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                  "sku": "2022-datacenter-azure-edition-hotpatch"},
        "region": "westeurope",
        "timezone": "Europe/Berlin",
        "hotpatch_enabled": true,
        "labels": {"env": "prod", "team": "web"}
    })
}

/// A supported Windows Server 2025 Azure VM with hotpatch on in a region that has it.
pub fn azure_2025(name: &str) -> Value {
    json!({
        "name": name,
        "platform": "azure_vm",
        "os": "windows_server_2025",
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                  "sku": "2025-datacenter-azure-edition"},
        "region": "uksouth",
        "timezone": "Europe/London",
        "hotpatch_enabled": true
    })
}

/// An eligible Arc-connected Windows Server 2025 machine.
pub fn arc_2025(name: &str) -> Value {
    json!({
        "name": name,
        "platform": "arc_connected",
        "os": "windows_server_2025",
        "edition": "datacenter",
        "os_build": "26100.1742",
        "vbs_enabled": true,
        "region": "onprem-fra",
        "timezone": "Europe/Berlin",
        "hotpatch_enabled": true
    })
}

/// `base` with `changes` merged in (top-level keys).
pub fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A release of `os` as `POST /v1/releases` takes it.
pub fn release(os: &str, kind: &str, planned: bool, month: &str, kb: &str) -> Value {
    json!({
        "os": os, "kind": kind, "planned": planned, "month": month, "kb": kb,
        "build": "20348.2227", "released_at": format!("{month}-14T18:00:00Z"),
    })
}

/// A Windows Server 2022 release.
pub fn ws2022(kind: &str, planned: bool, month: &str, kb: &str) -> Value {
    release("windows_server_2022", kind, planned, month, kb)
}

/// Publishes and returns the release's id.
pub async fn publish(app: &TestApp, body: Value) -> String {
    app.post("/v1/releases", ADMIN, body).await.ok(201)["id"].as_str().unwrap().to_owned()
}

/// January baseline, February and March hotpatches, April baseline, May hotpatch (2025).
pub async fn jan_to_may(app: &TestApp) -> Vec<String> {
    let mut ids = vec![];
    for (i, (kind, month)) in [
        ("baseline", "2025-01"),
        ("hotpatch", "2025-02"),
        ("hotpatch", "2025-03"),
        ("baseline", "2025-04"),
        ("hotpatch", "2025-05"),
    ]
    .into_iter()
    .enumerate()
    {
        ids.push(publish(app, ws2022(kind, true, month, &format!("KB500000{i}"))).await);
    }
    ids
}
