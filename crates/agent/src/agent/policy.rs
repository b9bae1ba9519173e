//! The retry and heartbeat timing policy of an agent, as pure functions.

use std::time::Duration;

use chrono::TimeDelta;

/// First retry delay after a failed request.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Heartbeats are never closer together than this.
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(200);

/// The delay before retrying after `failures` consecutive failed requests (1 = the first).
///
/// `BACKOFF_BASE · 2^(failures-1)`, capped at [`BACKOFF_MAX`], scaled into its upper half by
/// `jitter` ∈ [0, 1] ("equal jitter"), so agents that lost the server together come back spread
/// out. `jitter` is an argument so the policy is a pure function.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    full / 2 + full.mul_f64(jitter / 2.0)
}

/// The time to the next heartbeat: a third of the lease's `remaining` time, at most `max`,
/// at least [`HEARTBEAT_MIN`].
pub fn heartbeat_interval(remaining: TimeDelta, max: Duration) -> Duration {
    let third = remaining.to_std().unwrap_or(Duration::ZERO) / 3;
    third.min(max).max(HEARTBEAT_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_up_to_thirty_seconds() {
        let full: Vec<u128> = (1..=9).map(|n| backoff(n, 1.0).as_millis()).collect();
        assert_eq!(full, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_MAX);
    }

    #[test]
    fn backoff_jitter_stays_in_the_upper_half_of_the_delay() {
        assert_eq!(backoff(3, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(1500));
        assert_eq!(backoff(3, f64::NAN), Duration::from_secs(1));
        assert_eq!(backoff(3, 7.0), Duration::from_secs(2));
    }

    #[test]
    fn backoff_never_shrinks_as_failures_grow() {
        for n in 0..40 {
            assert!(backoff(n + 1, 0.3) >= backoff(n, 0.3));
        }
    }

    #[test]
    fn heartbeats_come_every_third_of_the_remaining_lease_within_bounds() {
        let max = Duration::from_secs(1);
        assert_eq!(heartbeat_interval(TimeDelta::milliseconds(1500), max), Duration::from_millis(500));
        assert_eq!(heartbeat_interval(TimeDelta::seconds(30), max), max);
        assert_eq!(
            heartbeat_interval(TimeDelta::seconds(30), Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        assert_eq!(heartbeat_interval(TimeDelta::milliseconds(300), max), HEARTBEAT_MIN);
        assert_eq!(heartbeat_interval(TimeDelta::seconds(-5), max), HEARTBEAT_MIN);
    }
}
