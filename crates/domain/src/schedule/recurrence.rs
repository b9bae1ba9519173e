//! Which local dates have a window: the recurrence as sent ([`RecurrenceSpec`]) and its parsed
//! form ([`Recurrence`]), whose [`RecurrenceRule`] the window engine runs without checks.

use chrono::Weekday;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::FieldError;

/// Largest `offset_days` either way ("second Tuesday + 4 days").
pub const MAX_OFFSET_DAYS: i64 = 30;
/// Largest `interval` of each frequency: a year of days, a year of weeks, a year of months.
pub const MAX_INTERVAL: [(Frequency, i64); 3] =
    [(Frequency::Daily, 366), (Frequency::Weekly, 52), (Frequency::Monthly, 12)];

/// How often a schedule repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// Every `interval` days.
    Daily,
    /// On the given days of every `interval`-th week (weeks start on Monday).
    Weekly,
    /// On one day of every `interval`-th month.
    Monthly,
}

impl Frequency {
    /// The largest `interval` this frequency takes.
    pub fn max_interval(self) -> i64 {
        MAX_INTERVAL.iter().find(|(f, _)| *f == self).map_or(12, |(_, m)| *m)
    }
}

/// A day of the week.
// Spelled out in lower case on the wire (`tuesday`); the variants need no words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

/// The n-th weekday of a month: `{week: 2, day: tuesday}` is the second Tuesday.
// `{week: -1, day: friday}` is the last Friday. (Doc comments are the OpenAPI descriptions,
// so `day` has none: the document shows none today.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NthWeekday {
    /// 1..4, or -1 for the last one of the month.
    pub week: i64,
    #[allow(missing_docs)]
    pub day: Day,
}

/// Which local dates have a window. `interval` counts from a fixed origin (every 3 months is
/// January, April, July and October).
// The origin: days and Monday-weeks from 0001-01-01, months from January of year 0, whatever
// day the schedule was written. The schema says `null` is taken for `interval`,
// `days_of_week` and `offset_days` (as the document always has); serde takes only a value or
// the field's absence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Recurrence)]
pub struct RecurrenceSpec {
    #[allow(missing_docs)]
    pub frequency: Frequency,
    /// Every how many days, weeks or months (default 1; at most 366, 52 or 12).
    #[serde(default = "one")]
    #[schema(value_type = Option<i64>)]
    pub interval: i64,
    /// Weekly only: at least one day.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Day>>)]
    pub days_of_week: Vec<Day>,
    /// Monthly only: 1..31, or -1 for the last day; a month without that day is skipped.
    #[serde(default)]
    pub day_of_month: Option<i64>,
    /// Monthly only, instead of `day_of_month`.
    #[serde(default)]
    pub nth_weekday: Option<NthWeekday>,
    /// Monthly only: -30..30 days added to the chosen day ("second Tuesday + 4 days").
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub offset_days: i64,
}

fn one() -> i64 {
    1
}

impl RecurrenceSpec {
    /// Every `interval` days, weeks or months, with nothing else set (weekly needs days and
    /// monthly a day before they are valid).
    pub fn every(frequency: Frequency, interval: i64) -> RecurrenceSpec {
        RecurrenceSpec {
            frequency,
            interval,
            days_of_week: Vec::new(),
            day_of_month: None,
            nth_weekday: None,
            offset_days: 0,
        }
    }
}

/// How a valid recurrence picks local dates. Only [`Recurrence::parse`] makes one that the
/// window engine sees: its interval is at least 1, a weekly rule has a day, an offset is
/// within ±[`MAX_OFFSET_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecurrenceRule {
    /// Every `interval`-th day, counted from 0001-01-01.
    Daily {
        /// Every how many days.
        interval: i64,
    },
    /// The given weekdays of every `interval`-th week, counted from the week of 0001-01-01.
    Weekly {
        /// Every how many weeks.
        interval: i64,
        /// Bit `n` set for the weekday `n` days from Monday.
        days: u8,
    },
    /// One day of every `interval`-th month, counted from January of year 0, moved by
    /// `offset_days`.
    Monthly {
        /// Every how many months.
        interval: i64,
        /// The day of the month before the offset.
        anchor: MonthAnchor,
        /// Days added to the anchor's day (possibly into another month).
        offset_days: i64,
    },
}

/// The day of a month a monthly rule picks before its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonthAnchor {
    /// That day, 1..31 (a month without it is skipped).
    Day(u32),
    /// The last day.
    LastDay,
    /// The n-th (1..4) such weekday.
    Nth(u32, Weekday),
    /// The last such weekday.
    LastWeekday(Weekday),
}

/// A valid recurrence: the spec as sent (shown back unchanged) and the rule it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    spec: RecurrenceSpec,
    rule: RecurrenceRule,
}

impl Recurrence {
    /// Parses a spec; every invalid field is reported, with its path under `recurrence.`.
    pub fn parse(spec: RecurrenceSpec) -> Result<Recurrence, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_interval(&spec, &mut errors);
        check_days_of_week(&spec, &mut errors);
        let anchor = match spec.frequency {
            Frequency::Monthly => month_anchor(&spec).map_err(|e| errors.push(e)).ok(),
            _ => {
                check_not_monthly(&spec, &mut errors);
                None
            }
        };
        check_offset(&spec, &mut errors);
        let interval = spec.interval;
        let rule = match (spec.frequency, anchor) {
            (Frequency::Daily, _) => RecurrenceRule::Daily { interval },
            (Frequency::Weekly, _) => {
                RecurrenceRule::Weekly { interval, days: weekday_bits(&spec.days_of_week) }
            }
            (Frequency::Monthly, Some(anchor)) => {
                RecurrenceRule::Monthly { interval, anchor, offset_days: spec.offset_days }
            }
            // `month_anchor` said why in `errors`.
            (Frequency::Monthly, None) => return Err(errors),
        };
        if errors.is_empty() {
            Ok(Recurrence { spec, rule })
        } else {
            Err(errors)
        }
    }

    /// Every day.
    pub fn daily() -> Recurrence {
        Recurrence {
            spec: RecurrenceSpec::every(Frequency::Daily, 1),
            rule: RecurrenceRule::Daily { interval: 1 },
        }
    }

    /// The rule the window engine runs.
    pub fn rule(&self) -> RecurrenceRule {
        self.rule
    }

    /// The recurrence as sent.
    pub fn spec(&self) -> &RecurrenceSpec {
        &self.spec
    }
}

fn weekday_bits(days: &[Day]) -> u8 {
    days.iter().fold(0u8, |m, d| m | 1 << Weekday::from(*d).num_days_from_monday())
}

fn check_interval(r: &RecurrenceSpec, errors: &mut Vec<FieldError>) {
    let max = r.frequency.max_interval();
    if !(1..=max).contains(&r.interval) {
        errors.push(FieldError::new("recurrence.interval", format!("must be between 1 and {max}")));
    }
}

fn check_days_of_week(r: &RecurrenceSpec, errors: &mut Vec<FieldError>) {
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
}

/// `day_of_month` and `nth_weekday` belong to monthly recurrences only.
fn check_not_monthly(r: &RecurrenceSpec, errors: &mut Vec<FieldError>) {
    if r.day_of_month.is_some() {
        errors.push(FieldError::new("recurrence.day_of_month", "only for monthly recurrences"));
    }
    if r.nth_weekday.is_some() {
        errors.push(FieldError::new("recurrence.nth_weekday", "only for monthly recurrences"));
    }
}

/// The day a monthly recurrence picks before its offset.
fn month_anchor(r: &RecurrenceSpec) -> Result<MonthAnchor, FieldError> {
    match (r.day_of_month, r.nth_weekday) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "recurrence.nth_weekday",
            "give either day_of_month or nth_weekday, not both",
        )),
        (None, None) => Err(FieldError::new(
            "recurrence.day_of_month",
            "a monthly recurrence needs day_of_month or nth_weekday",
        )),
        (Some(-1), None) => Ok(MonthAnchor::LastDay),
        (Some(d @ 1..=31), None) => Ok(MonthAnchor::Day(d.unsigned_abs() as u32)),
        (Some(_), None) => {
            Err(FieldError::new("recurrence.day_of_month", "must be 1..31, or -1 for the last day"))
        }
        (None, Some(n)) => match n.week {
            -1 => Ok(MonthAnchor::LastWeekday(n.day.into())),
            w @ 1..=4 => Ok(MonthAnchor::Nth(w.unsigned_abs() as u32, n.day.into())),
            _ => Err(FieldError::new("recurrence.nth_weekday.week", "must be 1..4, or -1 for the last")),
        },
    }
}

fn check_offset(r: &RecurrenceSpec, errors: &mut Vec<FieldError>) {
    if !(-MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS).contains(&r.offset_days) {
        errors.push(FieldError::new(
            "recurrence.offset_days",
            format!("must be between -{MAX_OFFSET_DAYS} and {MAX_OFFSET_DAYS}"),
        ));
    } else if r.offset_days != 0 && r.frequency != Frequency::Monthly {
        errors.push(FieldError::new("recurrence.offset_days", "only for monthly recurrences"));
    }
}
