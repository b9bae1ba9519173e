//! The agent protocol for one machine: claim, heartbeat, result, inventory, health.

use std::time::Duration;

use hotpatch_domain::job::{ClaimedJob, Health, Heartbeat, Inventory, JobResult, Lease};
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::{json, send, ClientError, Endpoint, CLAIM_GRACE, MAX_WAIT};

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
