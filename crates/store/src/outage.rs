//! Recovering from a database outage without failing a request on a dead pooled connection.
//!
//! The pool does not ping a connection before handing it out (a round trip per request on the
//! agent path), and pings it when it comes back (sqlx does, and drops it if broken). What that
//! misses is a connection that died while it sat idle in the pool: PostgreSQL restarted, or an
//! administrator terminated backends. So a connection is pinged before use when it has been idle
//! for [`IDLE_PING`] (a restart takes longer than that, so every connection that lived through
//! one is checked), and every connection is pinged for [`AFTER_FAILURE`] after any query of this
//! process saw the connection fail (a terminated backend can be idle for less than a second).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

/// A connection idle this long is pinged before use.
pub const IDLE_PING: Duration = Duration::from_secs(1);
/// For this long after a connection failure, every connection is pinged before use.
pub const AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Milliseconds since [`epoch`] of the last connection failure, plus one (0: none yet).
static LAST_FAILURE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Records that a query failed because of its connection or the server.
pub fn note_failure() {
    let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX - 1);
    LAST_FAILURE.store(ms + 1, Ordering::Relaxed);
}

/// Whether a connection idle for `idle_for` should be pinged before it is handed out.
pub fn should_ping(idle_for: Duration) -> bool {
    if idle_for >= IDLE_PING {
        return true;
    }
    match LAST_FAILURE.load(Ordering::Relaxed) {
        0 => false,
        at => epoch().elapsed().saturating_sub(Duration::from_millis(at - 1)) < AFTER_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_idle_past_the_threshold_is_pinged() {
        assert!(should_ping(IDLE_PING));
        assert!(should_ping(Duration::from_secs(3600)));
    }

    #[test]
    fn after_a_failure_every_connection_is_pinged() {
        note_failure();
        assert!(should_ping(Duration::ZERO));
    }
}
