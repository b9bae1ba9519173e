//! A schedule the window engine runs: the recurrence rule, local start time, duration, zone and
//! blackouts of a valid maintenance configuration (or of the default off-peak window). The wire
//! types and their checks live in `hotpatch_domain::schedule`; they are re-exported here.

use chrono::{NaiveTime, TimeDelta, Timelike};
use chrono_tz::Tz;
use hotpatch_domain::schedule::{
    check_blackouts, check_duration, check_start_time, MaintenanceConfiguration, Recurrence, RecurrenceRule,
};
use hotpatch_domain::FieldError;

pub use hotpatch_domain::schedule::{
    Blackout, Day, Frequency, NthWeekday, RecurrenceSpec, MAX_BLACKOUTS, MAX_DURATION, MAX_INTERVAL,
    MAX_OFFSET_DAYS, MIN_DURATION,
};

/// A schedule as sent, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Which local dates have a window.
    pub recurrence: RecurrenceSpec,
    /// Local wall-clock start (whole minutes).
    pub start_time: NaiveTime,
    /// Elapsed length of every window, 30 minutes to 24 hours.
    pub duration: TimeDelta,
    /// The zone whose wall clock `start_time` is read on.
    pub timezone: Tz,
    /// Periods without windows.
    pub blackouts: Vec<Blackout>,
}

/// A valid schedule, made from a parsed [`MaintenanceConfiguration`]
/// ([`Schedule::of_configuration`]), from a spec that passes the domain's checks
/// ([`Schedule::new`]) or by the off-peak constructors, so the window engine never meets a zero
/// interval or an empty week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub(crate) rule: RecurrenceRule,
    pub(crate) start_time: NaiveTime,
    pub(crate) duration: TimeDelta,
    pub(crate) timezone: Tz,
    /// Sorted by `from`, overlapping ones merged, so `to` increases too.
    pub(crate) blackouts: Vec<Blackout>,
}

impl Schedule {
    /// Validates a spec with the domain's checks; every invalid field is reported, with its
    /// dotted path.
    pub fn new(spec: ScheduleSpec) -> Result<Schedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let recurrence = Recurrence::parse(spec.recurrence).map_err(|e| errors.extend(e)).ok();
        errors.extend(check_start_time(spec.start_time).err());
        errors.extend(check_duration(spec.duration).err());
        errors.extend(check_blackouts(&spec.blackouts));
        match recurrence {
            Some(recurrence) if errors.is_empty() => Ok(Schedule {
                rule: recurrence.rule(),
                start_time: spec.start_time,
                duration: spec.duration,
                timezone: spec.timezone,
                blackouts: merge(spec.blackouts),
            }),
            _ => Err(errors),
        }
    }

    /// The windows of a configuration, on its own zone's clock or, when it has none, on the
    /// machine's (`machine_zone`).
    pub fn of_configuration(configuration: &MaintenanceConfiguration, machine_zone: Tz) -> Schedule {
        Schedule {
            rule: configuration.recurrence().rule(),
            start_time: configuration.start_time(),
            duration: configuration.duration().as_delta(),
            timezone: configuration.timezone().map_or(machine_zone, |tz| tz.0),
            blackouts: merge(configuration.blackouts().to_vec()),
        }
    }

    /// The default off-peak window: every day at 01:00 local for 4 hours.
    pub fn default_off_peak(timezone: Tz) -> Schedule {
        Schedule {
            rule: RecurrenceRule::Daily { interval: 1 },
            start_time: NaiveTime::MIN + TimeDelta::hours(1),
            duration: TimeDelta::hours(4),
            timezone,
            blackouts: Vec::new(),
        }
    }

    /// A daily off-peak window with the server's settings; the start is truncated to
    /// whole minutes and the duration clamped to 30 minutes–24 hours.
    pub fn daily_off_peak(timezone: Tz, start_time: NaiveTime, duration: TimeDelta) -> Schedule {
        let start_time =
            NaiveTime::MIN + TimeDelta::minutes(i64::from(start_time.num_seconds_from_midnight() / 60));
        Schedule {
            rule: RecurrenceRule::Daily { interval: 1 },
            start_time,
            duration: duration.clamp(MIN_DURATION, MAX_DURATION),
            timezone,
            blackouts: Vec::new(),
        }
    }

    /// The same schedule read on another zone's wall clock (a configuration without a
    /// zone of its own follows each machine's).
    pub fn with_timezone(mut self, timezone: Tz) -> Schedule {
        self.timezone = timezone;
        self
    }

    /// The zone the schedule is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The local start time.
    pub fn start_time(&self) -> NaiveTime {
        self.start_time
    }

    /// The elapsed length of each window.
    pub fn duration(&self) -> TimeDelta {
        self.duration
    }

    /// The blackouts, sorted and merged.
    pub fn blackouts(&self) -> &[Blackout] {
        &self.blackouts
    }
}

/// Sorts blackouts and merges those that overlap or touch, so that a window can be
/// checked against them with one binary search.
fn merge(mut blackouts: Vec<Blackout>) -> Vec<Blackout> {
    blackouts.sort_by_key(|b| b.from);
    let mut merged: Vec<Blackout> = Vec::with_capacity(blackouts.len());
    for b in blackouts {
        match merged.last_mut() {
            Some(last) if b.from <= last.to => last.to = last.to.max(b.to),
            _ => merged.push(b),
        }
    }
    merged
}
