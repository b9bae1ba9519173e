//! The HTTP client every delivery goes through, guarded against reaching the service's own
//! network (see [`hotpatch_domain::webhook_target`]): a literal IP host is checked before the
//! request, a hostname is resolved by [`GuardedResolver`], which drops the refused addresses and
//! fails the attempt when none is left, so the address checked is the address connected to (no
//! window for DNS rebinding). No proxy is used (a proxy would connect on our behalf, unchecked)
//! and redirects are not followed (a 3xx is a failed attempt), so no request leaves for an
//! address that was not checked.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotpatch_domain::webhook_target::{self, AllowList, Refusal, UrlError};
use hotpatch_store::webhooks::Claimed;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::delivery::{signature, TIMEOUT};
use crate::error::AppError;

/// The guarded client of deliveries (cheap to clone).
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    allow: Arc<AllowList>,
}

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The receiver's status, when it answered.
    pub status: Option<i32>,
    /// What went wrong, fit for the delivery log (no URL, no response body).
    pub error: String,
}

impl Failure {
    fn no_answer(error: String) -> Self {
        Failure { status: None, error }
    }
}

impl WebhookClient {
    /// A client that connects only to public addresses and to those of `allow`.
    pub fn new(allow: AllowList) -> Result<Self, AppError> {
        let allow = Arc::new(allow);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(TIMEOUT)
            .dns_resolver(Arc::new(GuardedResolver { allow: allow.clone() }))
            .build()
            .map_err(|e| AppError::Internal(format!("no HTTP client for webhooks: {e}")))?;
        Ok(WebhookClient { http, allow })
    }

    /// One attempt of `c`, signed at `now`: the status of a 2xx answer; anything else (another
    /// status, no answer, a refused address) fails.
    pub(crate) async fn send(&self, c: &Claimed, now: DateTime<Utc>) -> Result<i32, Failure> {
        let url = match webhook_target::parse(&c.url, &self.allow) {
            Ok(url) => url,
            Err(UrlError::Refused { ip, refusal }) => return Err(Failure::no_answer(refused(ip, refusal))),
            Err(e) => return Err(Failure::no_answer(e.to_string())),
        };
        let body = serde_json::to_vec(&c.body)
            .map_err(|e| Failure::no_answer(format!("the event could not be encoded: {e}")))?;
        let request = self
            .http
            .post(url)
            .timeout(TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Hotpatch-Event", &c.event_type)
            .header("Hotpatch-Delivery", c.id.to_string())
            .header("Hotpatch-Attempt", c.attempt.to_string())
            .header("Hotpatch-Signature", signature(&c.secret, now.timestamp(), &body))
            .body(body);
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(i32::from(r.status().as_u16())),
            // The body is not read: whatever an internal service answers stays out of the log.
            Ok(r) => Err(Failure {
                status: Some(i32::from(r.status().as_u16())),
                error: format!("the receiver answered {}", r.status()),
            }),
            Err(e) => Err(Failure::no_answer(describe(e))),
        }
    }
}

fn refused(ip: std::net::IpAddr, refusal: Refusal) -> String {
    format!("refuses internal address {ip} ({refusal}); an operator may allow it with --webhook-allow")
}

/// A failed request in words: the guard's refusal when it was that, otherwise the error and its
/// causes, without the URL (it may carry credentials).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    let mut causes = vec![];
    while let Some(cause) = source {
        if let Some(guard) = cause.downcast_ref::<InternalTarget>() {
            return guard.to_string();
        }
        causes.push(cause.to_string());
        source = cause.source();
    }
    let timeout = if e.is_timeout() { " (timed out)" } else { "" };
    format!("no answer from the receiver{timeout}: {e}: {}", causes.join(": "))
}

/// A host that resolves only to refused addresses.
#[derive(Debug, thiserror::Error)]
#[error("refuses internal address {addresses} of {host}; an operator may allow it with --webhook-allow")]
struct InternalTarget {
    host: String,
    addresses: String,
}

/// Resolves like the system does, then keeps only the addresses a webhook may connect to.
struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector puts the URL's port on the addresses it gets.
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (kept, refused): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|a| webhook_target::check(a.ip(), &allow).is_ok());
            if kept.is_empty() && !refused.is_empty() {
                let addresses = refused
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({})",
                            a.ip(),
                            webhook_target::classify(a.ip()).map_or("?".into(), |r| r.to_string())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(InternalTarget { host, addresses }) as _);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}
