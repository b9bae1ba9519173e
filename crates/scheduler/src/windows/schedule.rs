//! What a maintenance schedule says (the recurrence, start time, duration, zone and
//! blackouts as a client sends them) and its validation into a [`Schedule`] the engine
//! can run without further checks.

use chrono::{DateTime, Utc};
use chrono::{NaiveTime, TimeDelta, Timelike, Weekday};
use chrono_tz::Tz;
use hotpatch_domain::FieldError;
use serde::{Deserialize, Serialize};

/// Shortest window a schedule may have.
pub const MIN_DURATION: TimeDelta = TimeDelta::minutes(30);
/// Longest window a schedule may have.
pub const MAX_DURATION: TimeDelta = TimeDelta::hours(24);
/// Largest `offset_days` either way ("second Tuesday + 4 days").
pub const MAX_OFFSET_DAYS: i64 = 30;
/// Largest `interval` of each frequency: a year of days, a year of weeks, a year of months.
pub const MAX_INTERVAL: [(Frequency, i64); 3] =
    [(Frequency::Daily, 366), (Frequency::Weekly, 52), (Frequency::Monthly, 12)];
/// Most blackouts one schedule may carry.
pub const MAX_BLACKOUTS: usize = 100;

/// How often a schedule repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every `interval` days.
    Daily,
    /// On the given days of every `interval`-th week (weeks start on Monday).
    Weekly,
    /// On one day of every `interval`-th month.
    Monthly,
}

/// A day of the week, spelled out in lower case on the wire (`tuesday`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Day {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<Day> for Weekday {
    fn from(d: Day) -> Weekday {
        match d {
            Day::Monday => Weekday::Mon,
            Day::Tuesday => Weekday::Tue,
            Day::Wednesday => Weekday::Wed,
            Day::Thursday => Weekday::Thu,
            Day::Friday => Weekday::Fri,
            Day::Saturday => Weekday::Sat,
            Day::Sunday => Weekday::Sun,
        }
    }
}

/// The n-th given weekday of a month: `{week: 2, day: tuesday}` is the second Tuesday,
/// `{week: -1, day: friday}` the last Friday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NthWeekday {
    /// 1..4, or -1 for the last one of the month.
    pub week: i64,
    /// The weekday.
    pub day: Day,
}

/// The recurrence as sent: which local dates have a window.
///
/// `interval` counts from a fixed origin (days and Monday-weeks from 0001-01-01, months
/// from January of year 0), so "every 3 months" means January, April, July and October,
/// whatever day the schedule was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceSpec {
    /// Daily, weekly or monthly.
    pub frequency: Frequency,
    /// Every how many days, weeks or months (≥ 1).
    #[serde(default = "one")]
    pub interval: i64,
    /// Weekly only: the days of the week (at least one).
    #[serde(default)]
    pub days_of_week: Vec<Day>,
    /// Monthly only: 1..31, or -1 for the last day; a month without that day is skipped.
    #[serde(default)]
    pub day_of_month: Option<i64>,
    /// Monthly only, instead of `day_of_month`: the n-th weekday of the month.
    #[serde(default)]
    pub nth_weekday: Option<NthWeekday>,
    /// Monthly only: days added to the chosen day (-30..30), possibly into the next or
    /// previous month.
    #[serde(default)]
    pub offset_days: i64,
}

fn one() -> i64 {
    1
}

/// A period in which no window may fall, as UTC instants: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blackout {
    /// First instant of the blackout.
    pub from: DateTime<Utc>,
    /// First instant after it.
    pub to: DateTime<Utc>,
}

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

/// How the local dates of a recurrence are chosen, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    Daily {
        interval: i64,
    },
    /// `days`: bit `n` set for the weekday `n` days from Monday.
    Weekly {
        interval: i64,
        days: u8,
    },
    Monthly {
        interval: i64,
        anchor: MonthAnchor,
        offset_days: i64,
    },
}

/// The day of a month a monthly rule picks before its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MonthAnchor {
    /// 1..31.
    Day(u32),
    LastDay,
    /// n-th (1..4) weekday.
    Nth(u32, Weekday),
    LastWeekday(Weekday),
}

/// A valid schedule: only [`Schedule::new`] (or the off-peak constructors) make one, so
/// the window engine never meets a zero interval or an empty week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub(crate) rule: Rule,
    pub(crate) start_time: NaiveTime,
    pub(crate) duration: TimeDelta,
    pub(crate) timezone: Tz,
    /// Sorted by `from`, overlapping ones merged, so `to` increases too.
    pub(crate) blackouts: Vec<Blackout>,
}

impl Schedule {
    /// Validates a spec; every invalid field is reported, with its dotted path.
    pub fn new(spec: ScheduleSpec) -> Result<Schedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let rule = rule(&spec.recurrence, &mut errors);
        if spec.start_time.second() != 0 || spec.start_time.nanosecond() != 0 {
            errors.push(FieldError::new("start_time", "must be whole minutes (HH:MM)"));
        }
        if spec.duration < MIN_DURATION || spec.duration > MAX_DURATION {
            errors
                .push(FieldError::new("duration", "must be between 30 minutes (PT30M) and 24 hours (PT24H)"));
        } else if spec.duration.subsec_nanos() != 0 {
            errors.push(FieldError::new("duration", "must be whole seconds"));
        }
        if spec.blackouts.len() > MAX_BLACKOUTS {
            errors.push(FieldError::new("blackouts", format!("at most {MAX_BLACKOUTS} blackouts")));
        }
        for (i, b) in spec.blackouts.iter().enumerate() {
            if b.from >= b.to {
                errors.push(FieldError::new(format!("blackouts[{i}].to"), "must be after `from`"));
            }
        }
        match rule {
            Some(rule) if errors.is_empty() => Ok(Schedule {
                rule,
                start_time: spec.start_time,
                duration: spec.duration,
                timezone: spec.timezone,
                blackouts: merge(spec.blackouts),
            }),
            _ => Err(errors),
        }
    }

    /// The default off-peak window: every day at 01:00 local for 4 hours.
    pub fn default_off_peak(timezone: Tz) -> Schedule {
        Schedule {
            rule: Rule::Daily { interval: 1 },
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
            rule: Rule::Daily { interval: 1 },
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

fn rule(r: &RecurrenceSpec, errors: &mut Vec<FieldError>) -> Option<Rule> {
    let before = errors.len();
    let max = MAX_INTERVAL.iter().find(|(f, _)| *f == r.frequency).map_or(12, |(_, m)| *m);
    if !(1..=max).contains(&r.interval) {
        errors.push(FieldError::new("recurrence.interval", format!("must be between 1 and {max}")));
    }
    let monthly = r.frequency == Frequency::Monthly;
    if r.frequency == Frequency::Weekly {
        if r.days_of_week.is_empty() {
            errors.push(FieldError::new(
                "recurrence.days_of_week",
                "a weekly recurrence needs at least one day",
            ));
        }
    } else if !r.days_of_week.is_empty() {
        errors.push(FieldError::new("recurrence.days_of_week", "only for weekly recurrences"));
    }
    let mut anchor = None;
    match (r.day_of_month, r.nth_weekday) {
        _ if !monthly => {
            if r.day_of_month.is_some() {
                errors.push(FieldError::new("recurrence.day_of_month", "only for monthly recurrences"));
            }
            if r.nth_weekday.is_some() {
                errors.push(FieldError::new("recurrence.nth_weekday", "only for monthly recurrences"));
            }
        }
        (Some(_), Some(_)) => errors.push(FieldError::new(
            "recurrence.nth_weekday",
            "give either day_of_month or nth_weekday, not both",
        )),
        (None, None) => errors.push(FieldError::new(
            "recurrence.day_of_month",
            "a monthly recurrence needs day_of_month or nth_weekday",
        )),
        (Some(-1), None) => anchor = Some(MonthAnchor::LastDay),
        (Some(d @ 1..=31), None) => anchor = u32::try_from(d).ok().map(MonthAnchor::Day),
        (Some(_), None) => {
            errors.push(FieldError::new("recurrence.day_of_month", "must be 1..31, or -1 for the last day"))
        }
        (None, Some(n)) => match n.week {
            -1 => anchor = Some(MonthAnchor::LastWeekday(n.day.into())),
            w @ 1..=4 => anchor = u32::try_from(w).ok().map(|w| MonthAnchor::Nth(w, n.day.into())),
            _ => errors
                .push(FieldError::new("recurrence.nth_weekday.week", "must be 1..4, or -1 for the last")),
        },
    }
    if !(-MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS).contains(&r.offset_days) {
        errors.push(FieldError::new(
            "recurrence.offset_days",
            format!("must be between -{MAX_OFFSET_DAYS} and {MAX_OFFSET_DAYS}"),
        ));
    } else if r.offset_days != 0 && !monthly {
        errors.push(FieldError::new("recurrence.offset_days", "only for monthly recurrences"));
    }
    if errors.len() > before {
        return None;
    }
    Some(match r.frequency {
        Frequency::Daily => Rule::Daily { interval: r.interval },
        Frequency::Weekly => Rule::Weekly {
            interval: r.interval,
            days: r.days_of_week.iter().fold(0u8, |m, d| m | 1 << Weekday::from(*d).num_days_from_monday()),
        },
        Frequency::Monthly => {
            Rule::Monthly { interval: r.interval, anchor: anchor?, offset_days: r.offset_days }
        }
    })
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
