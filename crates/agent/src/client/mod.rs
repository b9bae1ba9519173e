//! HTTP clients: [`AgentClient`] speaks the agent protocol for one machine (claim, heartbeat,
//! result, inventory, health), [`FleetClient`] makes the operator calls the simulator needs to
//! register its machines and read the release catalog. Both map `application/problem+json` answers into one [`ClientError`].

//!
//! The error and the mapping of error answers are in `error.rs`, the agent protocol in
//! `protocol.rs`, the operator calls and the shapes of their answers in `operator.rs`.

mod error;
mod operator;
mod protocol;

use std::time::Duration;

use reqwest::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

pub use error::{error_from_response, ClientError};
pub use operator::{FleetClient, MachineRef, RecordedState, RegionRef};
pub use protocol::AgentClient;

/// How long any request other than a claim may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a claim's `wait` for its request timeout.
pub const CLAIM_GRACE: Duration = Duration::from_secs(15);
/// The longest long-poll the server accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The shared connection pool every client of this process uses: one pool for 10,000 agents.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    builder().build().map_err(ClientError::Transport)
}

/// [`http_client`] that also trusts the CA certificates in the PEM file `ca_file` (a private
/// CA for the server's certificate), besides the built-in roots.
pub fn http_client_trusting(ca_file: &std::path::Path) -> Result<reqwest::Client, ClientError> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| ClientError::Config(format!("cannot read the CA file {}: {e}", ca_file.display())))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ClientError::Config(format!("the CA file {} holds no usable PEM certificate: {e}", ca_file.display()))
    })?;
    if certificates.is_empty() {
        return Err(ClientError::Config(format!(
            "the CA file {} holds no PEM certificate",
            ca_file.display()
        )));
    }
    certificates
        .into_iter()
        .fold(builder(), |b, c| b.add_root_certificate(c))
        .build()
        .map_err(ClientError::Transport)
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .user_agent(concat!("hotpatch-agent/", env!("CARGO_PKG_VERSION")))
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

/// The body of a success answer, as the protocol says it is.
async fn json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let body = response.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}
