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

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.lock() {
            Source::System(offset) => Utc::now() + *offset,
            Source::Manual(at) => *at,
        }
    }

    /// Moves the clock forward (a system clock keeps running from its new offset).
    pub fn advance(&self, by: TimeDelta) {
        match &mut *self.lock() {
            Source::System(offset) => *offset += by,
            Source::Manual(at) => *at += by,
        }
    }

    /// Sets a manual clock to `at` (a system clock is shifted so that it reads `at` now).
    pub fn set(&self, at: DateTime<Utc>) {
        let mut source = self.lock();
        match &mut *source {
            Source::System(offset) => *offset = at - Utc::now(),
            Source::Manual(t) => *t = at,
        }
    }

    /// How far a system clock is shifted from the system's (`None` for a manual clock).
    pub fn offset(&self) -> Option<TimeDelta> {
        match &*self.lock() {
            Source::System(offset) => Some(*offset),
            Source::Manual(_) => None,
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
    fn an_advanced_system_clock_runs_ahead_of_the_system() {
        let c = Clock::system();
        c.advance(TimeDelta::days(2));
        assert!(c.now() - Utc::now() > TimeDelta::days(2) - TimeDelta::seconds(5));
    }
}
