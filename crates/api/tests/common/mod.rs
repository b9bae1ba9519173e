//! Router tests: the real router over a fresh database, driven with `oneshot`.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use hotpatch_api::{router, AppState};
use hotpatch_store::PgPool;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// The bootstrap admin token every test app starts with.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef0123456789";

#[derive(Clone)]
pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    /// Keeps the test database alive (it is dropped with the last app on it).
    pub db: std::sync::Arc<hotpatch_store::testing::TestDb>,
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
    /// Another replica on the same database: its own state (and so its own caches), from `state`.
    pub fn replica(&self, state: AppState) -> TestApp {
        TestApp { router: router(state), pool: self.pool.clone(), db: self.db.clone() }
    }

    pub async fn new() -> TestApp {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        TestApp {
            router: router(AppState::new(db.pool.clone())),
            pool: db.pool.clone(),
            db: std::sync::Arc::new(db),
        }
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
/// A hotpatch Windows Server 2022 machine of westeurope with nothing installed, as the rollout
/// planner takes it (what `azure_2022` registers).
pub fn planned_machine(id: &str) -> hotpatch_scheduler::rollout::RolloutMachine {
    hotpatch_scheduler::rollout::RolloutMachine {
        machine_id: id.parse().unwrap(),
        os: hotpatch_domain::OsVersion::WindowsServer2022,
        orchestration: hotpatch_domain::PatchOrchestration::AutomaticByPlatform,
        region: "westeurope".to_owned(),
        availability_zone: None,
        availability_set: None,
        update_domain: None,
        state: hotpatch_scheduler::cycle::MachineState {
            hotpatch: true,
            current_baseline: None,
            latest_installed: None,
            reboot_pending: false,
        },
    }
}

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

// ---------------------------------------------------------------------------------------------
// The job queue: an app whose state the test holds (clock, wake-ups), agents, assessments.
// ---------------------------------------------------------------------------------------------

impl TestApp {
    /// A test app over a state the test adjusts first (a manual clock, settings). The state it
    /// returns shares the app's pool, clock and wake-ups: move the clock or feed the wake-ups there.
    pub async fn with_state(adjust: impl FnOnce(&mut AppState)) -> (TestApp, AppState) {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        let mut state = AppState::new(db.pool.clone());
        adjust(&mut state);
        let app =
            TestApp { router: router(state.clone()), pool: db.pool.clone(), db: std::sync::Arc::new(db) };
        (app, state)
    }

    /// Sends a request with extra headers; `body` is JSON unless `None`.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, HeaderValue)],
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (name, value) in headers {
            req = req.header(*name, value.clone());
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Registers a machine and returns its id.
    pub async fn machine_id(&self, spec: Value) -> String {
        id_of(&self.machine(spec).await)
    }

    /// An agent token for the machine, issued by the admin.
    pub async fn agent_token(&self, machine_id: &str) -> String {
        let r = self
            .call(Method::POST, &format!("/v1/machines/{machine_id}/agent-token"), Some(ADMIN), None)
            .await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/machines/{id}/assess` without a body; asserts 202 and returns the operation.
    pub async fn assess(&self, machine_id: &str, token: &str) -> Value {
        let r =
            self.call(Method::POST, &format!("/v1/machines/{machine_id}/assess"), Some(token), None).await;
        r.ok(202).clone()
    }

    /// `POST /v1/agent/jobs/claim?wait=0`; asserts 200 and returns the claimed job.
    pub async fn claim(&self, agent: &str) -> Value {
        let r = self.call(Method::POST, "/v1/agent/jobs/claim?wait=0", Some(agent), None).await;
        r.ok(200).clone()
    }

    /// `POST /v1/agent/jobs/claim?wait=0`; asserts 204 (nothing to claim).
    pub async fn claim_nothing(&self, agent: &str) {
        let r = self.call(Method::POST, "/v1/agent/jobs/claim?wait=0", Some(agent), None).await;
        assert_eq!(r.status.as_u16(), 204, "expected no job; body: {}", r.body);
    }

    /// `POST /v1/agent/jobs/{job}/result` with `outcome` under the job's lease, plus `extra` fields.
    pub async fn report(&self, agent: &str, job: &Value, outcome: &str, extra: Value) -> Reply {
        let mut body = json!({"lease_id": job["lease"]["id"], "outcome": outcome});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.post(&format!("/v1/agent/jobs/{}/result", id_of(job)), agent, body).await
    }

    /// `GET /v1/operations/{id}`; asserts 200.
    pub async fn operation(&self, id: &str) -> Value {
        self.get(&format!("/v1/operations/{id}"), ADMIN).await.ok(200).clone()
    }
}

/// The `id` of a JSON object.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// An instant of the API's JSON.
pub fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap_or_else(|| panic!("{v} is not an instant")).parse().unwrap()
}

/// A valid inventory: build 20348.2227, one installed KB, four available updates (a critical and a
/// security one, recommended; a driver and a .NET update, update compliance).
pub fn inventory() -> Value {
    json!({
        "os_build": "20348.2227",
        "reboot_pending": false,
        "installed_updates": [
            {"kb": "KB5034439", "title": "2025-01 Security Update", "classification": "security",
             "installed_on": "2025-01-14", "installed_by": "windows_update"}
        ],
        "available_updates": [
            {"kb": "KB5040001", "title": "Critical fix", "classification": "critical", "requires_reboot": false},
            {"kb": "KB5040002", "title": "Security fix", "classification": "security", "requires_reboot": true},
            {"kb": "KB5040003", "title": "NIC driver", "classification": "driver", "requires_reboot": true},
            {"kb": "KB5040004", "title": ".NET 8 update", "classification": "dotnet", "requires_reboot": false}
        ]
    })
}

/// Waits until `check` holds, polling; panics after `within`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    within: std::time::Duration,
    check: impl Fn() -> F,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The process's LISTEN loop (`Wakeups::run`, as `hotpatchd` runs it) for `state`, started and
/// listening when this returns. Send on the sender (or drop it) to stop it.
pub async fn listen(
    app: &TestApp,
    state: &AppState,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(state.wakeups.clone().run(app.pool.clone(), async {
        let _ = stopped.await;
    }));
    let pool = app.pool.clone();
    eventually("the LISTEN connection", std::time::Duration::from_secs(5), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and pid <> pg_backend_pid()
                   and query ilike '%listen%hotpatch_job%'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            n > 0
        }
    })
    .await;
    (stop, listener)
}
