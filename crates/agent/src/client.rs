//! HTTP clients: [`AgentClient`] speaks the agent protocol for one machine (claim, heartbeat,
//! result, inventory, health), [`FleetClient`] makes the operator calls the simulator needs to
//! register its machines. Both map `application/problem+json` answers into one [`ClientError`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{ClaimedJob, Health, Heartbeat, InstalledUpdate, Inventory, JobResult, Lease};
use hotpatch_domain::{MachineSpec, OsBuild, OsVersion};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long any request other than a claim may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a claim's `wait` for its request timeout.
pub const CLAIM_GRACE: Duration = Duration::from_secs(15);
/// The longest long-poll the server accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The job's lease is gone (409 `lease_lost`): another attempt owns the job now.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// 404: no such job or machine (or not this agent's).
    #[error("not found: {0}")]
    NotFound(String),
    /// 401: the token is missing, wrong, expired or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Any other error answer.
    #[error("HTTP {status} {code}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's `code` (`http_<status>` when the body had none).
        code: String,
        /// The problem's `detail` (or the start of the body).
        detail: String,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("transport: {}", with_causes(.0))]
    Transport(#[from] reqwest::Error),
    /// A success answer whose body is not what the protocol says.
    #[error("unexpected response: {0}")]
    Decode(String),
}

/// An error and its causes, `outer: inner: …` (reqwest's own text leaves out why).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ClientError {
    /// Whether trying again later may succeed: transport errors, 5xx, 408, 429 and bad bodies.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Decode(_) => true,
            ClientError::Problem { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            ClientError::LeaseLost(_) | ClientError::NotFound(_) | ClientError::Unauthorized(_) => false,
        }
    }

    /// The problem `code`, when the server sent an error answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::LeaseLost(_) => Some("lease_lost"),
            ClientError::NotFound(_) => Some("not_found"),
            ClientError::Unauthorized(_) => Some("unauthorized"),
            ClientError::Problem { code, .. } => Some(code),
            ClientError::Transport(_) | ClientError::Decode(_) => None,
        }
    }
}

/// The parts of a problem+json body a client reads.
#[derive(Debug, Default, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// The error an answer with this (non-success) status and body stands for.
///
/// Pure, so the mapping is tested without a server. A body that is not problem+json still
/// yields a useful error: its first 200 characters become the detail.
pub fn error_from_response(status: u16, body: &[u8]) -> ClientError {
    let problem: ProblemBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = problem.detail.or(problem.title).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect::<String>().trim().to_owned()
    });
    let code = problem.code.unwrap_or_else(|| format!("http_{status}"));
    match (status, code.as_str()) {
        (409, "lease_lost") => ClientError::LeaseLost(detail),
        (401, _) => ClientError::Unauthorized(detail),
        (404, _) => ClientError::NotFound(detail),
        _ => ClientError::Problem { status, code, detail },
    }
}

/// The shared connection pool every client of this process uses: one pool for 10,000 agents.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .user_agent(concat!("hotpatch-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ClientError::Transport)
}

/// Base URL and bearer token, shared by both clients.
#[derive(Debug, Clone)]
struct Endpoint {
    http: reqwest::Client,
    base: String,
    token: String,
    /// `Bearer <token>`, built once (marked sensitive) rather than formatted for every request;
    /// `None` when the token cannot be a header value (the request then fails as it always did).
    authorization: Option<reqwest::header::HeaderValue>,
}

impl Endpoint {
    fn new(http: reqwest::Client, base: &str, token: &str) -> Endpoint {
        let authorization =
            reqwest::header::HeaderValue::try_from(format!("Bearer {token}")).ok().map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Endpoint { http, base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), authorization }
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.clone()),
            None => request.bearer_auth(&self.token),
        }
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.authorized(self.http.post(format!("{}{path}", self.base))).timeout(REQUEST_TIMEOUT)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.authorized(self.http.get(format!("{}{path}", self.base))).timeout(REQUEST_TIMEOUT)
    }
}

/// Sends the request; a non-success status becomes its [`ClientError`].
async fn send(request: RequestBuilder) -> Result<Response, ClientError> {
    let response = request.send().await?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    Err(error_from_response(status, &body))
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}

/// The agent side of the protocol, for one machine (its token names the machine).
#[derive(Debug, Clone)]
pub struct AgentClient {
    endpoint: Endpoint,
}

/// `POST /v1/agent/jobs/{id}/heartbeat` answer; only the status is relied on.
#[derive(Debug, Deserialize)]
struct HeartbeatAnswer {
    lease: Lease,
}

impl AgentClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`) with an agent token.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> AgentClient {
        AgentClient { endpoint: Endpoint::new(http, base, token) }
    }

    /// Long-polls for the next job: `None` when nothing came within `wait` (capped at 60 s).
    pub async fn claim(&self, wait: Duration) -> Result<Option<ClaimedJob>, ClientError> {
        let wait = wait.min(MAX_WAIT);
        let request = self
            .endpoint
            .post(&format!("/v1/agent/jobs/claim?wait={}", wait.as_secs()))
            .timeout(wait + CLAIM_GRACE);
        let response = send(request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        json(response).await.map(Some)
    }

    /// Extends a lease. Returns the new lease when the server says it (the body is optional).
    pub async fn heartbeat(&self, job: Uuid, lease_id: Uuid) -> Result<Option<Lease>, ClientError> {
        let request =
            self.endpoint.post(&format!("/v1/agent/jobs/{job}/heartbeat")).json(&Heartbeat { lease_id });
        let response = send(request).await?;
        let body = response.bytes().await?;
        Ok(serde_json::from_slice::<HeartbeatAnswer>(&body).ok().map(|a| a.lease))
    }

    /// Reports how a job ended (idempotent on the server).
    pub async fn result(&self, job: Uuid, result: &JobResult) -> Result<(), ClientError> {
        send(self.endpoint.post(&format!("/v1/agent/jobs/{job}/result")).json(result)).await.map(drop)
    }

    /// Reports the machine's inventory (an assessment).
    pub async fn inventory(&self, inventory: &Inventory) -> Result<(), ClientError> {
        send(self.endpoint.post("/v1/agent/inventory").json(inventory)).await.map(drop)
    }

    /// Reports the machine's health.
    pub async fn health(&self, health: &Health) -> Result<(), ClientError> {
        send(self.endpoint.post("/v1/agent/health").json(health)).await.map(drop)
    }
}

/// A registered machine as the simulator needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MachineRef {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its OS, when the answer says it (machine lists do; import answers do not).
    #[serde(default)]
    pub os: Option<OsVersion>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A region and whether it offers Windows Server 2025 Azure Edition (`GET /v1/regions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegionRef {
    /// Region name.
    pub name: String,
    /// Windows Server 2025 Azure Edition is available there.
    #[serde(default)]
    pub windows_server_2025_azure_edition: bool,
}

#[derive(Serialize)]
struct AgentTokenRequest<'a> {
    name: &'a str,
}

#[derive(Deserialize)]
struct CreatedToken {
    token: String,
}

/// A machine as its last assessment left it on the server.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedState {
    /// OS build.
    pub os_build: OsBuild,
    /// Installed updates, as reported.
    pub installed: Vec<InstalledUpdate>,
}

#[derive(Deserialize)]
struct RecordedUpdates {
    items: Vec<InstalledUpdate>,
    assessed_at: Option<DateTime<Utc>>,
    os_build: Option<OsBuild>,
}

/// Operator calls the simulator makes to register and adopt its machines.
#[derive(Debug, Clone)]
pub struct FleetClient {
    endpoint: Endpoint,
}

impl FleetClient {
    /// A client for the server at `base` with an operator token.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> FleetClient {
        FleetClient { endpoint: Endpoint::new(http, base, token) }
    }

    /// `POST /v1/machines/import` (all or nothing); the registered machines in request order.
    pub async fn import(&self, specs: &[MachineSpec]) -> Result<Vec<MachineRef>, ClientError> {
        let request = self.endpoint.post("/v1/machines/import").json(specs).timeout(REQUEST_TIMEOUT * 4);
        let answer: Items<MachineRef> = json(send(request).await?).await?;
        Ok(answer.items)
    }

    /// Every machine carrying the label `key=value`, following `next_cursor` to the end.
    pub async fn machines_with_label(&self, key: &str, value: &str) -> Result<Vec<MachineRef>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("label", format!("{key}:{value}")), ("limit", "1000".to_owned())];
            if let Some(c) = cursor.take() {
                query.push(("cursor", c));
            }
            let page: Items<MachineRef> =
                json(send(self.endpoint.get("/v1/machines").query(&query)).await?).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }

    /// `GET /v1/regions`: the known regions and their capabilities.
    pub async fn regions(&self) -> Result<Vec<RegionRef>, ClientError> {
        let page: Items<RegionRef> = json(send(self.endpoint.get("/v1/regions?limit=1000")).await?).await?;
        Ok(page.items)
    }

    /// What the server recorded of a machine at its last assessment: its OS build and installed
    /// updates; `None` when it was never assessed.
    pub async fn recorded_state(&self, machine: Uuid) -> Result<Option<RecordedState>, ClientError> {
        let recorded: RecordedUpdates =
            json(send(self.endpoint.get(&format!("/v1/machines/{machine}/installed-updates"))).await?)
                .await?;
        Ok(match (recorded.assessed_at, recorded.os_build) {
            (Some(_), Some(os_build)) => Some(RecordedState { os_build, installed: recorded.items }),
            _ => None,
        })
    }

    /// Mints an agent token for a machine (`POST /v1/machines/{id}/agent-token`).
    pub async fn agent_token(&self, machine: Uuid, name: &str) -> Result<String, ClientError> {
        let request = self
            .endpoint
            .post(&format!("/v1/machines/{machine}/agent-token"))
            .json(&AgentTokenRequest { name });
        let created: CreatedToken = json(send(request).await?).await?;
        Ok(created.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, code: &str, detail: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": format!("urn:hotpatch:problem:{code}"), "title": "t", "status": status,
            "detail": detail, "code": code,
        }))
        .unwrap()
    }

    #[test]
    fn a_409_lease_lost_problem_is_a_lost_lease() {
        let e = error_from_response(409, &problem(409, "lease_lost", "the lease expired"));
        assert!(matches!(e, ClientError::LeaseLost(ref d) if d == "the lease expired"), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_409_with_another_code_stays_a_problem_with_its_code() {
        let e = error_from_response(409, &problem(409, "conflict", "name taken"));
        assert!(
            matches!(e, ClientError::Problem { status: 409, ref code, .. } if code == "conflict"),
            "{e:?}"
        );
        assert_eq!(e.code(), Some("conflict"));
    }

    #[test]
    fn a_401_is_unauthorized_and_a_404_is_not_found_whatever_the_body() {
        assert!(matches!(error_from_response(401, b""), ClientError::Unauthorized(_)));
        assert!(matches!(
            error_from_response(404, &problem(404, "not_found", "no job")),
            ClientError::NotFound(_)
        ));
    }

    #[test]
    fn a_body_that_is_not_json_becomes_the_detail_of_a_retryable_5xx() {
        let e = error_from_response(502, b"Bad Gateway\n");
        match &e {
            ClientError::Problem { status, code, detail } => {
                assert_eq!((*status, code.as_str(), detail.as_str()), (502, "http_502", "Bad Gateway"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_retryable());
    }

    #[test]
    fn client_errors_other_than_timeouts_and_rate_limits_are_not_retried() {
        assert!(!error_from_response(422, &problem(422, "validation_failed", "bad")).is_retryable());
        assert!(error_from_response(429, &problem(429, "rate_limited", "slow down")).is_retryable());
    }
}
