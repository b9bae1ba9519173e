//! Webhook deliveries: a pass turns new change-feed events into deliveries (one replica at a
//! time), claims the due ones under a lease and POSTs them, signed, to their receivers through the
//! guarded [`WebhookClient`]; a failed attempt is retried with exponential backoff and jitter
//! ([`RetryPolicy`]) until it runs out of attempts. `hotpatchd` runs a pass every second.
//!
//! Each webhook is a lane: its claimed deliveries (at most [`PER_WEBHOOK`] a pass) go one after
//! the other in event order, while the lanes of different webhooks run side by side
//! ([`CONCURRENCY`] at once), each outcome written as it comes. A lane stops at its first failure
//! (a receiver that is down would fail the rest too) and when the pass's time is up, giving its
//! unsent deliveries back; so a slow or dead receiver holds only its own lane, for about one
//! [`TIMEOUT`]. Each outcome also counts in the webhook's record: a webhook that keeps failing is
//! disabled ([`hotpatch_domain::webhook_health`]) until an operator enables it again.
//!
//! A delivery is `POST <url>` with the event as JSON (`{"id", "type", "data"}`) and the headers
//! `Hotpatch-Event` (type), `Hotpatch-Delivery` (delivery id), `Hotpatch-Attempt` and
//! `Hotpatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
//! A receiver recomputes the HMAC over the raw body and rejects old timestamps (replays).

use chrono::TimeDelta;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use hotpatch_domain::job::RetryPolicy;
use hotpatch_domain::webhook_target::redact;
use hotpatch_store::webhooks::{self, Attempt, Claimed};
use rand::Rng as _;
use sha2::Sha256;
use tokio::time::Instant;

use super::client::{Failure, WebhookClient};
use crate::error::AppError;
use crate::App;

/// Attempts of one delivery (with the default policy: about half an hour of retries).
pub const MAX_ATTEMPTS: i32 = 8;
/// How long a receiver may take to answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Events one pass fans out, deliveries one pass claims.
const BATCH: i64 = 500;
/// Deliveries of one webhook one pass claims at most.
pub const PER_WEBHOOK: i64 = 20;
/// Lanes (webhooks) delivering at once.
pub const CONCURRENCY: usize = 16;
/// How long into a pass a lane may start an attempt: the pass ends within about this plus one
/// [`TIMEOUT`], and the next one claims what it gave back.
const START_WITHIN: std::time::Duration = TIMEOUT;

/// The retry policy of deliveries: 5 s doubling up to 10 min, halved by jitter at most.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
}

/// The `Hotpatch-Signature` value of `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Events fanned out.
    pub events: usize,
    /// Deliveries attempted.
    pub attempted: usize,
    /// Of those, delivered.
    pub delivered: usize,
}

impl std::ops::AddAssign for Pass {
    fn add_assign(&mut self, other: Pass) {
        self.events += other.events;
        self.attempted += other.attempted;
        self.delivered += other.delivered;
    }
}

/// One pass at the service clock's `now`, sending through `client`.
pub async fn pass(app: &App, client: &WebhookClient) -> Result<Pass, AppError> {
    let now = app.clock.now();
    let mut pass = Pass::default();
    let mut tx = app.pool.begin().await?;
    webhooks::reap_expired(&mut *tx, now).await?;
    pass.events = webhooks::fan_out(&mut tx, BATCH, MAX_ATTEMPTS, now).await?.unwrap_or(0);
    tx.commit().await?;

    // The lease outlasts the pass: attempts start within START_WITHIN and last at most TIMEOUT.
    let lease = TimeDelta::from_std(START_WITHIN + TIMEOUT * 2).unwrap_or(TimeDelta::minutes(1));
    let claimed = webhooks::claim_due(&app.pool, now, now + lease, PER_WEBHOOK, BATCH).await?;
    let start_until = Instant::now() + START_WITHIN;
    let lanes: Vec<Result<Pass, AppError>> = futures::stream::iter(lanes(claimed))
        .map(|lane| run_lane(app, client, lane, start_until))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for lane in lanes {
        pass += lane?;
    }
    if pass.attempted > 0 {
        tracing::info!(
            events = pass.events,
            attempted = pass.attempted,
            delivered = pass.delivered,
            "webhook deliveries"
        );
    }
    Ok(pass)
}

/// The claimed deliveries by webhook, each lane in event order.
fn lanes(mut claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    claimed.sort_by_key(|c| (c.webhook_id, c.event_id));
    claimed.chunk_by(|a, b| a.webhook_id == b.webhook_id).map(<[Claimed]>::to_vec).collect()
}

/// Sends one webhook's deliveries in order until one fails or the pass's time is up; gives the
/// rest back unsent.
async fn run_lane(
    app: &App,
    client: &WebhookClient,
    lane: Vec<Claimed>,
    start_until: Instant,
) -> Result<Pass, AppError> {
    let mut done = Pass::default();
    let mut lane = lane.into_iter();
    for c in lane.by_ref() {
        if Instant::now() >= start_until {
            webhooks::release(&app.pool, c.id, c.attempt, app.clock.now()).await?;
            break;
        }
        done.attempted += 1;
        let outcome = client.send(&c, app.clock.now()).await;
        let delivered = outcome.is_ok();
        record(app, &c, outcome).await?;
        if !delivered {
            break;
        }
        done.delivered += 1;
    }
    for c in lane {
        webhooks::release(&app.pool, c.id, c.attempt, app.clock.now()).await?;
    }
    Ok(done)
}

/// Writes an attempt's outcome and counts it in its webhook's record, disabling the webhook when
/// the record says so; in one transaction.
async fn record(app: &App, c: &Claimed, outcome: Result<i32, Failure>) -> Result<(), AppError> {
    let now = app.clock.now();
    let attempt = match outcome {
        Ok(status) => Attempt::Delivered { status },
        Err(Failure { status, error }) => {
            let jitter = rand::thread_rng().gen();
            let retry_at = retry_policy().next_run_at(now, c.attempt, jitter);
            tracing::warn!(delivery_id = %c.id, webhook_id = %c.webhook_id, url = %redact(&c.url),
                attempt = c.attempt, max_attempts = c.max_attempts, status, %error, %retry_at,
                "webhook delivery failed");
            Attempt::Failed { status, error, retry_at }
        }
    };
    let delivered = matches!(attempt, Attempt::Delivered { .. });
    let mut tx = app.pool.begin().await?;
    // A lost lease (the reaper gave the delivery back) decides nothing: the next attempt does.
    let finished = webhooks::finish(&mut *tx, c.id, c.attempt, &attempt, now).await?;
    if finished {
        let health = webhooks::record_outcome(&mut *tx, c.webhook_id, delivered, now).await?;
        if health.should_disable(now)
            && webhooks::disable(&mut *tx, c.webhook_id, &health.reason(), now).await?
        {
            tracing::warn!(webhook_id = %c.webhook_id, url = %redact(&c.url), reason = %health.reason(),
                "webhook disabled: it keeps failing");
        }
    }
    tx.commit().await?;
    if finished {
        let outcome = match attempt {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Failed { .. } if c.attempt >= c.max_attempts => "failed",
            Attempt::Failed { .. } => "retrying",
        };
        app.telemetry.record(|| {
            metrics::counter!("hotpatch_webhook_deliveries_total", "outcome" => outcome).increment(1)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 signs "what do ya want for nothing?" with key "Jefe"; here the
        // message is "<t>.<body>", so compare against the same construction by hand.
        let sig = signature("Jefe", 1, b"what do ya want for nothing?");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("t=1,v1={hex}"));
        assert_ne!(signature("Jefe", 2, b"x"), signature("Jefe", 1, b"x"), "the timestamp is signed");
        assert_ne!(signature("other", 1, b"x"), signature("Jefe", 1, b"x"));
    }

    #[test]
    fn rfc_4231_case_2_through_the_same_mac() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
