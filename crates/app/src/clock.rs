//! The service's clock. Handlers and background loops read `now` here and pass it to the rules,
//! so tests (and the simulator's fast-forwarded fleets) can run the service at any instant.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// Where `now` comes from.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Mutex<Source>>);

#[derive(Debug)]
enum Source {
    /// The system clock, shifted by an offset.
    System(TimeDelta),
    /// A fixed instant, moved only by [`Clock::advance`] and [`Clock::set`].
    Manual(DateTime<Utc>),
    /// Runs `speed` times faster than the system clock from `at`, which it read at `since`
    /// (`hotpatchd dev`: an hour a second).
    Fast { at: DateTime<Utc>, since: DateTime<Utc>, speed: f64 },
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Mutex::new(Source::System(TimeDelta::zero()))))
    }

    /// A clock that stands still at `at` until moved.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock(Arc::new(Mutex::new(Source::Manual(at))))
    }

    /// A clock that reads `at` now and runs `speed` times faster than the system's (at least
    /// as fast). Durations the service measures on its clock (leases, agent silence) shrink by
    /// as much: `hotpatchd dev` stretches its settings of those to match.
    pub fn fast(at: DateTime<Utc>, speed: f64) -> Clock {
        Clock(Arc::new(Mutex::new(Source::Fast { at, since: Utc::now(), speed: speed.max(1.0) })))
    }

    /// From the instant it reads now, runs `speed` times faster than the system clock (a manual
    /// clock starts running: `hotpatchd dev` holds its clock still until its fleet is up).
    pub fn run_fast(&self, speed: f64) {
        let at = self.now();
        *self.lock() = Source::Fast { at, since: Utc::now(), speed: speed.max(1.0) };
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.lock() {
            Source::System(offset) => Utc::now() + *offset,
            Source::Manual(at) => *at,
            Source::Fast { at, since, speed } => *at + scaled(Utc::now() - *since, *speed),
        }
    }

    /// Moves the clock forward (a running clock keeps running from there).
    pub fn advance(&self, by: TimeDelta) {
        match &mut *self.lock() {
            Source::System(offset) => *offset += by,
            Source::Manual(at) | Source::Fast { at, .. } => *at += by,
        }
    }

    /// Sets the clock to `at` (a running clock keeps running from there).
    pub fn set(&self, at: DateTime<Utc>) {
        let mut source = self.lock();
        match &mut *source {
            Source::System(offset) => *offset = at - Utc::now(),
            Source::Manual(t) => *t = at,
            Source::Fast { at: t, since, .. } => {
                *t = at;
                *since = Utc::now();
            }
        }
    }

    /// How many times faster than the system clock it runs (0 for a manual clock).
    pub fn speed(&self) -> f64 {
        match &*self.lock() {
            Source::System(_) => 1.0,
            Source::Manual(_) => 0.0,
            Source::Fast { speed, .. } => *speed,
        }
    }

    /// How far a system clock is shifted from the system's (`None` for a manual or fast clock).
    pub fn offset(&self) -> Option<TimeDelta> {
        match &*self.lock() {
            Source::System(offset) => Some(*offset),
            Source::Manual(_) | Source::Fast { .. } => None,
        }
    }

    /// Shifts a system clock by `offset` from the system's; a manual clock is left alone (tests
    /// drive it themselves).
    pub fn follow(&self, offset: TimeDelta) {
        if let Source::System(o) = &mut *self.lock() {
            *o = offset;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Source> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `d` times `speed`, to the millisecond.
fn scaled(d: TimeDelta, speed: f64) -> TimeDelta {
    TimeDelta::milliseconds((d.num_milliseconds() as f64 * speed) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let t = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let c = Clock::manual(t);
        assert_eq!(c.now(), t);
        c.advance(TimeDelta::minutes(5));
        assert_eq!(c.now(), t + TimeDelta::minutes(5));
    }

    #[test]
    fn a_fast_clock_runs_its_speed_times_faster_from_where_it_was_set() {
        let t = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let c = Clock::fast(t, 3600.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ran = c.now() - t;
        // 20 ms of real time at 3600x is at least 72 s (scheduling only makes it more).
        assert!(ran >= TimeDelta::seconds(72), "{ran}");
        assert_eq!(c.speed(), 3600.0);
        assert_eq!(c.offset(), None);
        let later = t + TimeDelta::days(10);
        c.set(later);
        assert!(c.now() >= later && c.now() - later < TimeDelta::hours(1));
        assert_eq!(Clock::fast(t, 0.5).speed(), 1.0, "never slower than the system's");
        let held = Clock::manual(t);
        held.run_fast(60.0);
        assert!(held.now() >= t && held.now() - t < TimeDelta::hours(1), "runs on from where it stood");
        assert_eq!(held.speed(), 60.0);
    }

    #[test]
    fn an_advanced_system_clock_runs_ahead_of_the_system() {
        let c = Clock::system();
        c.advance(TimeDelta::days(2));
        assert!(c.now() - Utc::now() > TimeDelta::days(2) - TimeDelta::seconds(5));
    }
}
