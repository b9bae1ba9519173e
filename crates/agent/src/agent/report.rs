//! Delivering a job's spooled reports: the inventory, then the result, retried with backoff
//! and no cap until the server answers for good; then the health, a few tries.
//!
//! "For good" is a success, or a refusal retrying cannot change: 409 `lease_lost` (the job was
//! re-queued or ended under another lease), 404, or another 4xx. The server takes a result
//! under its lease until the job is re-queued, even past the lease's expiry, so delivery keeps
//! trying until it hears which; a re-queued job offered again is answered from the finished-job
//! record ([`crate::spool`]).

use std::future::Future;
use std::sync::atomic::Ordering;

use hotpatch_domain::job::Outcome;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};
use uuid::Uuid;

use super::{backoff, sleep_or_cancel, Agent, AgentError};
use crate::client::ClientError;
use crate::executor::Executor;

/// How sending one report ended.
enum Sent {
    Accepted,
    /// Refused for good: retrying cannot help.
    Refused(ClientError),
    /// Cancelled between tries: the report stays spooled.
    Stopped,
}

/// Whether a job's reports were settled or delivery stopped (cancelled) with them still spooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    Settled,
    Stopped,
}

impl<E: Executor> Agent<E> {
    /// Delivers every spooled job; true when cancelled first (the rest stays spooled).
    pub(super) async fn drain(&mut self, cancel: &CancellationToken) -> Result<bool, AgentError> {
        for job_id in self.spool.pending_jobs() {
            if cancel.is_cancelled() {
                return Ok(true);
            }
            let span = info_span!("spooled", %job_id);
            if self.deliver(job_id, cancel).instrument(span).await? == Delivery::Stopped {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Delivers the spooled reports of `job_id`: its inventory, its result, then (the entry
    /// settled) its health.
    pub(super) async fn deliver(
        &mut self,
        job_id: Uuid,
        cancel: &CancellationToken,
    ) -> Result<Delivery, AgentError> {
        let Some(mut entry) = self.spool.pending(job_id).cloned() else {
            return Ok(Delivery::Settled);
        };
        if let Some(inventory) = entry.inventory.take() {
            match self.send(cancel, "inventory", || self.client.inventory(&inventory)).await? {
                Sent::Accepted => {}
                Sent::Stopped => return Ok(Delivery::Stopped),
                Sent::Refused(e) if entry.inventory_decides => {
                    warn!(error = %e, "inventory refused: the assessment is reported failed");
                    entry.fail(format!("the inventory was not accepted: {e}"));
                }
                // The job's own outcome stands; the recorded state waits for the next assessment.
                Sent::Refused(e) => warn!(error = %e, "inventory after the job refused"),
            }
            // Settled: a restart from here on sends the result only.
            self.spool.keep(entry.clone());
        }
        let result = &entry.result;
        match self.send(cancel, "result", || self.client.result(job_id, result)).await? {
            Sent::Accepted => {
                let stats = &self.conn.stats;
                stats.jobs_done.fetch_add(1, Ordering::Relaxed);
                if result.outcome == Outcome::Failed {
                    stats.jobs_failed.fetch_add(1, Ordering::Relaxed);
                }
                debug!(
                    outcome = <&str>::from(result.outcome),
                    error = result.error.as_deref(),
                    "job reported"
                );
            }
            Sent::Stopped => return Ok(Delivery::Stopped),
            Sent::Refused(e @ (ClientError::LeaseLost(_) | ClientError::NotFound(_))) => {
                self.conn.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, lease_expires_at = %entry.lease.expires_at,
                    "result refused: the job is no longer ours; if offered again it is reported, not run");
            }
            Sent::Refused(e) => warn!(error = %e, "result refused for good"),
        }
        self.spool.settle(job_id);
        if entry.health {
            self.report_health(cancel).await?;
        }
        Ok(Delivery::Settled)
    }

    /// Sends one report until it is accepted or refused for good, backing off (exponentially,
    /// with jitter) after transport errors, 5xx, 408 and 429, with no cap; stops when cancelled.
    async fn send<F, Fut>(&self, cancel: &CancellationToken, what: &str, call: F) -> Result<Sent, AgentError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), ClientError>>,
    {
        let mut failures = 0u32;
        loop {
            let r = call().await;
            self.conn.note(&r);
            match r {
                Ok(()) => return Ok(Sent::Accepted),
                Err(ClientError::Unauthorized(d)) => return Err(AgentError::Unauthorized(d)),
                Err(e) if e.is_retryable() => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures, rand::thread_rng().gen());
                    warn!(error = %e, what, failures, retry_in_ms = delay.as_millis() as u64,
                        "report failed; it stays spooled and is tried again");
                    if sleep_or_cancel(delay, cancel).await {
                        return Ok(Sent::Stopped);
                    }
                }
                Err(e) => return Ok(Sent::Refused(e)),
            }
        }
    }

    /// Reports the machine's health, with up to `health_attempts` tries: it is a snapshot, the
    /// next one replaces it, so it is not spooled.
    async fn report_health(&mut self, cancel: &CancellationToken) -> Result<(), AgentError> {
        let health = self.executor.health().await;
        let mut failures = 0;
        loop {
            let r = self.client.health(&health).await;
            self.conn.note(&r);
            match r {
                Ok(()) => return Ok(()),
                Err(ClientError::Unauthorized(d)) => return Err(AgentError::Unauthorized(d)),
                Err(e) if e.is_retryable() && failures + 1 < self.config.health_attempts => {
                    failures += 1;
                    let delay = backoff(failures, rand::thread_rng().gen());
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "health report failed");
                    if sleep_or_cancel(delay, cancel).await {
                        return Ok(());
                    }
                }
                Err(e) => {
                    warn!(error = %e, "health not delivered");
                    return Ok(());
                }
            }
        }
    }
}
