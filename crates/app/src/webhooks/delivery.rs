//! Webhook deliveries: a pass turns new change-feed events into deliveries (one replica at a
//! time), claims the due ones under a lease and POSTs them, signed, to their receivers at once;
//! a failed attempt is retried with exponential backoff and jitter ([`RetryPolicy`]) until it runs
//! out of attempts. `hotpatchd` runs a pass every second.
//!
//! A delivery is `POST <url>` with the event as JSON (`{"id", "type", "data"}`) and the headers
//! `Hotpatch-Event` (type), `Hotpatch-Delivery` (delivery id), `Hotpatch-Attempt` and
//! `Hotpatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
//! A receiver recomputes the HMAC over the raw body and rejects old timestamps (replays).

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use hotpatch_domain::job::RetryPolicy;
use hotpatch_store::webhooks::{self, Attempt, Claimed};
use rand::Rng as _;
use sha2::Sha256;

use crate::error::AppError;
use crate::App;

/// Attempts of one delivery (with the default policy: about half an hour of retries).
pub const MAX_ATTEMPTS: i32 = 8;
/// How long a receiver may take to answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Events one pass fans out, deliveries one pass sends.
const BATCH: i64 = 500;
/// Deliveries sent at once.
const CONCURRENCY: usize = 16;

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

/// One pass at the service clock's `now`, sending with `http`.
pub async fn pass(app: &App, http: &reqwest::Client) -> Result<Pass, AppError> {
    let now = app.clock.now();
    let mut pass = Pass::default();
    let mut tx = app.pool.begin().await?;
    webhooks::reap_expired(&mut *tx, now).await?;
    pass.events = webhooks::fan_out(&mut tx, BATCH, MAX_ATTEMPTS, now).await?.unwrap_or(0);
    tx.commit().await?;

    // The lease covers every attempt of the batch at the receivers' longest.
    let lease = TimeDelta::from_std(TIMEOUT * 4).unwrap_or(TimeDelta::minutes(1));
    let claimed = webhooks::claim_due(&app.pool, now, now + lease, BATCH).await?;
    pass.attempted = claimed.len();
    let outcomes: Vec<(Claimed, Result<i32, Refused>)> = futures::stream::iter(claimed)
        .map(|c| async move {
            let outcome = send(http, &c, app.clock.now()).await;
            (c, outcome)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let policy = retry_policy();
    for (c, outcome) in outcomes {
        let outcome = match outcome {
            Ok(status) => {
                pass.delivered += 1;
                Attempt::Delivered { status }
            }
            Err(Refused { status, error }) => {
                let retry_at = policy.next_run_at(app.clock.now(), c.attempt, rand::thread_rng().gen());
                tracing::warn!(delivery_id = %c.id, attempt = c.attempt, max_attempts = c.max_attempts,
                    status, %error, %retry_at, "webhook delivery failed");
                Attempt::Failed { status, error, retry_at }
            }
        };
        webhooks::finish(&app.pool, c.id, c.attempt, &outcome, app.clock.now()).await?;
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

/// Why an attempt failed.
struct Refused {
    /// The receiver's status, when it answered.
    status: Option<i32>,
    error: String,
}

/// One attempt: the status of a 2xx answer; anything else (another status, no answer) refused.
async fn send(http: &reqwest::Client, c: &Claimed, now: DateTime<Utc>) -> Result<i32, Refused> {
    let body = serde_json::to_vec(&c.body)
        .map_err(|e| Refused { status: None, error: format!("the event could not be encoded: {e}") })?;
    let request = http
        .post(&c.url)
        .timeout(TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Hotpatch-Event", &c.event_type)
        .header("Hotpatch-Delivery", c.id.to_string())
        .header("Hotpatch-Attempt", c.attempt.to_string())
        .header("Hotpatch-Signature", signature(&c.secret, now.timestamp(), &body))
        .body(body);
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(i32::from(r.status().as_u16())),
        Ok(r) => Err(Refused {
            status: Some(i32::from(r.status().as_u16())),
            error: format!("the receiver answered {}", r.status()),
        }),
        Err(e) => Err(Refused { status: None, error: format!("no answer from the receiver: {e}") }),
    }
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
