//! When a webhook is disabled for failing: a receiver that has been gone for a day keeps costing
//! every replica timeouts and fills the delivery log with failures nobody reads. Like well-run
//! webhook services, the control plane then stops delivering to it until an operator re-enables
//! it; a few failures in a row, or a bad hour, are not enough.

use chrono::{DateTime, TimeDelta, Utc};

/// Failed attempts in a row before a webhook may be disabled.
pub const MIN_CONSECUTIVE_FAILURES: i32 = 5;

/// How long a webhook must have failed, without one success, before it is disabled.
pub fn min_failing_for() -> TimeDelta {
    TimeDelta::hours(24)
}

/// A webhook's recent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Failed attempts since the last success (or since it was created or re-enabled).
    pub consecutive_failures: i32,
    /// The first failure of that run (`None` when it has none).
    pub failing_since: Option<DateTime<Utc>>,
}

impl Health {
    /// Whether to disable the webhook at `now`: at least [`MIN_CONSECUTIVE_FAILURES`] failures in
    /// a row and no success for at least [`min_failing_for`].
    pub fn should_disable(&self, now: DateTime<Utc>) -> bool {
        self.consecutive_failures >= MIN_CONSECUTIVE_FAILURES
            && self.failing_since.is_some_and(|since| now - since >= min_failing_for())
    }

    /// Why, in the words the webhook's `disabled_reason` shows.
    pub fn reason(&self) -> String {
        format!(
            "{} failed deliveries in a row, none succeeded since {}",
            self.consecutive_failures,
            self.failing_since.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
    }

    fn health(failures: i32, since_hours_ago: Option<i64>, now: DateTime<Utc>) -> Health {
        Health {
            consecutive_failures: failures,
            failing_since: since_hours_ago.map(|h| now - TimeDelta::hours(h)),
        }
    }

    #[test]
    fn five_failures_over_a_day_disable_the_webhook() {
        assert!(health(5, Some(24), t0()).should_disable(t0()));
        assert!(health(40, Some(72), t0()).should_disable(t0()));
    }

    #[test]
    fn many_failures_within_a_day_do_not() {
        assert!(!health(100, Some(23), t0()).should_disable(t0()));
    }

    #[test]
    fn a_day_of_failing_with_fewer_than_five_failures_does_not() {
        assert!(!health(4, Some(48), t0()).should_disable(t0()));
    }

    #[test]
    fn a_webhook_without_failures_is_never_disabled() {
        assert!(!health(0, None, t0()).should_disable(t0()));
    }

    #[test]
    fn the_reason_names_the_run() {
        let r = health(6, Some(24), t0()).reason();
        assert!(r.starts_with("6 failed deliveries in a row"), "{r}");
    }
}
