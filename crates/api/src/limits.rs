//! Limits on what one client can take: a request rate per token and per address, and caps on
//! requests that stay open (event streams, long polls) per token and in total.
//!
//! A token's rate is checked once it is authenticated (its real id: made-up ids cannot dodge it);
//! agents are exempt, their pace is the protocol's and their long polls are capped instead. An
//! address's rate covers every request but health checks, metrics and the agent protocol (many
//! agents may share one NAT address), so a flood of bad tokens from one place is refused before
//! it costs a database lookup each. A refusal is 429 `rate_limited` with `Retry-After`. With the
//! default settings of [`crate::AppState::new`] nothing is limited; `hotpatchd` sets limits.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hotpatch_domain::webhook_target::AllowList;
use uuid::Uuid;

use crate::error::ApiError;

/// How long a client refused for an open-request cap is asked to wait.
const CAP_RETRY: Duration = Duration::from_secs(5);

/// What [`Limits`] allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per second of one (non-agent) token, with bursts of twice as many; 0: unlimited.
    pub per_token_rps: u32,
    /// Requests per second from one address (agent protocol and health checks aside), bursts of
    /// twice as many; 0: unlimited.
    pub per_address_rps: u32,
    /// Event streams one token may hold open.
    pub streams_per_token: usize,
    /// Event streams open at once on this replica.
    pub streams_total: usize,
    /// Long polls (claims, operation waits) one token may hold open.
    pub polls_per_token: usize,
    /// Long polls open at once on this replica.
    pub polls_total: usize,
}

impl LimitSettings {
    /// No limit at all (library users and tests; `hotpatchd` configures its own).
    pub const UNLIMITED: LimitSettings = LimitSettings {
        per_token_rps: 0,
        per_address_rps: 0,
        streams_per_token: usize::MAX,
        streams_total: usize::MAX,
        polls_per_token: usize::MAX,
        polls_total: usize::MAX,
    };
}

/// The limits of one replica.
pub struct Limits {
    settings: LimitSettings,
    per_token: Option<DefaultKeyedRateLimiter<Uuid>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Event streams held open.
    pub streams: Arc<Caps>,
    /// Long polls held open.
    pub polls: Arc<Caps>,
    /// Proxies whose `X-Forwarded-For` names the client (see [`client_address`]).
    trusted_proxies: AllowList,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitSettings::UNLIMITED)
    }
}

fn limiter<K: Hash + Eq + Clone>(rps: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rps)?;
    let burst = NonZeroU32::new(rps.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

impl Limits {
    /// Limits as `settings` say.
    pub fn new(settings: LimitSettings) -> Self {
        Limits {
            settings,
            per_token: limiter(settings.per_token_rps),
            per_address: limiter(settings.per_address_rps),
            streams: Arc::new(Caps::new("event streams", settings.streams_per_token, settings.streams_total)),
            polls: Arc::new(Caps::new("long polls", settings.polls_per_token, settings.polls_total)),
            trusted_proxies: AllowList::default(),
        }
    }

    /// Takes the client's address from `X-Forwarded-For` when the peer is one of `proxies` (a
    /// reverse proxy or load balancer in front of the replicas), so the address rate counts
    /// clients, not the proxy.
    pub fn trusting(mut self, proxies: AllowList) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// What these limits allow.
    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// Counts a request of token `id` against its rate.
    pub fn check_token(&self, id: Uuid) -> Result<(), ApiError> {
        match &self.per_token {
            Some(l) => l.check_key(&id).map_err(|not_until| refused("this token", not_until)),
            None => Ok(()),
        }
    }

    /// Counts a request from `ip` against its rate.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.per_address {
            Some(l) => l.check_key(&ip).map_err(|not_until| refused("this address", not_until)),
            None => Ok(()),
        }
    }

    /// Forgets keys idle long enough to have a full burst again (run now and then).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_token {
            l.retain_recent();
        }
        if let Some(l) = &self.per_address {
            l.retain_recent();
        }
    }
}

fn refused(who: &str, not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::RateLimited {
        detail: format!("too many requests from {who}; slow down"),
        retry_after: wait.max(Duration::from_secs(1)),
    }
}

/// A cap on requests held open, per token and in total.
#[derive(Debug)]
pub struct Caps {
    what: &'static str,
    per_key: usize,
    total: usize,
    held: Mutex<(usize, HashMap<Uuid, usize>)>,
}

/// One open request counted by [`Caps`]; dropping it frees its place.
#[derive(Debug)]
pub struct Held {
    caps: Arc<Caps>,
    key: Uuid,
}

impl Caps {
    fn new(what: &'static str, per_key: usize, total: usize) -> Self {
        Caps { what, per_key, total, held: Mutex::new((0, HashMap::new())) }
    }

    /// A place for one more open request of `key`, or 429 when the token or the replica is full.
    pub fn hold(self: &Arc<Self>, key: Uuid) -> Result<Held, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_key) = &mut *held;
        let mine = per_key.entry(key).or_default();
        let full = if *mine >= self.per_key {
            Some(format!("this token already holds {} open {}", self.per_key, self.what))
        } else if *total >= self.total {
            Some(format!("this replica already holds {} open {}", self.total, self.what))
        } else {
            None
        };
        if let Some(detail) = full {
            if *mine == 0 {
                per_key.remove(&key);
            }
            return Err(ApiError::RateLimited { detail, retry_after: CAP_RETRY });
        }
        *mine += 1;
        *total += 1;
        Ok(Held { caps: self.clone(), key })
    }

    /// Open requests right now.
    pub fn open(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.caps.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_key) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(n) = per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_key.remove(&self.key);
            }
        }
    }
}

/// Paths an address's rate does not cover: health checks, metrics, the agent protocol.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/v1/agent/")
}

/// The client a request comes from: its peer, unless the peer is a trusted proxy; then, reading
/// `X-Forwarded-For` from the right (each proxy appends the address it received from), the first
/// address that is not a trusted proxy. Addresses a client wrote itself, left of that, are not
/// believed; an unreadable entry stops the walk at the last address known good.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &AllowList) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.unwrap_or_default().rsplit(',').map(str::trim) {
        let Some(ip) = parse_forwarded(entry) else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

/// Middleware: the rate of the request's client address (when the server passes the peer, see
/// `into_make_service_with_connect_info`; behind trusted proxies, from `X-Forwarded-For`).
pub(crate) async fn per_address(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    if !exempt(req.uri().path()) {
        if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
            let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let client = client_address(addr.ip(), forwarded, &limits.trusted_proxies);
            if let Err(refused) = limits.check_address(client) {
                return refused.into_response();
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted: AllowList = "10.0.0.0/8, fd00::/8".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            // peer, X-Forwarded-For, client
            ("203.0.113.9", Some("198.51.100.1"), "203.0.113.9"), // not a proxy: its header is ignored
            ("10.0.0.5", Some("198.51.100.1"), "198.51.100.1"),
            ("10.0.0.5", Some("6.6.6.6, 198.51.100.1"), "198.51.100.1"), // a forged left part is skipped
            ("10.0.0.5", Some("198.51.100.1, 10.0.0.7"), "198.51.100.1"), // two proxies deep
            ("10.0.0.5", None, "10.0.0.5"),
            ("10.0.0.5", Some("garbage, 198.51.100.1"), "198.51.100.1"),
            ("10.0.0.5", Some("198.51.100.1, garbage"), "10.0.0.5"), // stop at the last good one
            ("10.0.0.5", Some("198.51.100.1:4711"), "198.51.100.1"),
            ("fd00::1", Some("[2001:db8::1]:443"), "2001:db8::1"),
            ("10.0.0.5", Some("10.0.0.6, 10.0.0.7"), "10.0.0.6"), // only proxies: the farthest
        ];
        for (peer, header, want) in cases {
            assert_eq!(client_address(ip(peer), header, &trusted), ip(want), "{peer} {header:?}");
        }
        assert_eq!(
            client_address(ip("10.0.0.5"), Some("198.51.100.1"), &AllowList::default()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_token_gets_its_burst_then_is_refused_with_a_wait() {
        let limits = Limits::new(LimitSettings { per_token_rps: 5, ..LimitSettings::UNLIMITED });
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        for _ in 0..10 {
            limits.check_token(a).unwrap();
        }
        match limits.check_token(a) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert!(retry_after >= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        limits.check_token(b).unwrap();
    }

    #[test]
    fn caps_count_per_token_and_in_total_and_free_on_drop() {
        let caps = Arc::new(Caps::new("streams", 2, 3));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let a1 = caps.hold(a).unwrap();
        let _a2 = caps.hold(a).unwrap();
        assert!(caps.hold(a).is_err(), "per token");
        let _b1 = caps.hold(b).unwrap();
        assert!(caps.hold(b).is_err(), "in total");
        drop(a1);
        assert_eq!(caps.open(), 2);
        let _b2 = caps.hold(b).unwrap();
    }

    #[test]
    fn unlimited_limits_refuse_nothing() {
        let limits = Limits::default();
        let id = Uuid::now_v7();
        for _ in 0..10_000 {
            limits.check_token(id).unwrap();
        }
    }
}
