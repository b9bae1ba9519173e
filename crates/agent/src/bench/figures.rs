//! The figures a run prints: quantiles and `name value unit` lines.

use std::time::Duration;

/// The `q`-quantile (0–1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

/// One figure of a run: `name value unit`, the line format of `../shared/limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable name, e.g. `queue_http_jobs_per_s`.
    pub name: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:.2} {}", self.name, self.value, self.unit)
    }
}

pub(super) fn figure(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure { name, value, unit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_rank_at_or_above() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&d, 0.5), 50.0);
        assert_eq!(quantile_ms(&d, 0.99), 99.0);
        assert_eq!(quantile_ms(&d, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
