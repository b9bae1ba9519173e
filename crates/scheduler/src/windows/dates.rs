//! The local dates a recurrence picks, in increasing order, without any time zone.

use chrono::{Datelike, Days, NaiveDate, Weekday};

use hotpatch_domain::schedule::{MonthAnchor, RecurrenceRule as Rule};

/// Ascending dates of a rule, from a first date to a last one (inclusive).
pub(crate) struct Dates {
    rule: Rule,
    /// Daily and weekly: the next date to look at. Monthly: unused.
    cursor: Option<NaiveDate>,
    /// Monthly: the next month to look at, as `year * 12 + month0`.
    month: i64,
    from: NaiveDate,
    until: NaiveDate,
}

/// Day number with 0001-01-01 (a Monday) as 1: the origin `interval` counts from.
fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

fn month_number(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

fn add_days(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    let days = Days::new(n.unsigned_abs());
    if n >= 0 {
        d.checked_add_days(days)
    } else {
        d.checked_sub_days(days)
    }
}

impl Dates {
    /// Dates of `rule` within `[from, until]`.
    pub(crate) fn new(rule: Rule, from: NaiveDate, until: NaiveDate) -> Dates {
        let (cursor, month) = match rule {
            Rule::Daily { interval } => {
                let behind = day_number(from).rem_euclid(interval);
                (add_days(from, (interval - behind) % interval), 0)
            }
            Rule::Weekly { .. } => (Some(from), 0),
            Rule::Monthly { interval, .. } => {
                // With a positive offset (up to 30 days) a day chosen in an earlier month
                // can land on `from` or later: January 31 + 30 days is March 2.
                let first = month_number(from) - 2;
                (None, first + (interval - first.rem_euclid(interval)) % interval)
            }
        };
        Dates { rule, cursor, month, from, until }
    }

    fn next_weekly(&mut self, interval: i64, days: u8) -> Option<NaiveDate> {
        // At most 7 steps inside a matching week, plus one jump to the next such week.
        for _ in 0..16 {
            let d = self.cursor?;
            if d > self.until {
                return None;
            }
            let n = day_number(d);
            let week = (n - 1).div_euclid(7);
            let behind = week.rem_euclid(interval);
            if behind != 0 {
                let monday = (week + interval - behind) * 7 + 1;
                self.cursor = add_days(d, monday - n);
                continue;
            }
            self.cursor = d.succ_opt();
            if days & (1 << d.weekday().num_days_from_monday()) != 0 {
                return Some(d);
            }
        }
        None
    }

    fn next_monthly(&mut self, interval: i64, anchor: MonthAnchor, offset: i64) -> Option<NaiveDate> {
        loop {
            let year = i32::try_from(self.month.div_euclid(12)).ok()?;
            let month0 = u32::try_from(self.month.rem_euclid(12)).ok()?;
            let first = NaiveDate::from_ymd_opt(year, month0 + 1, 1)?;
            if add_days(first, -31).is_none_or(|d| d > self.until) {
                return None;
            }
            self.month += interval;
            let Some(day) = anchor_in(first, anchor) else { continue };
            let Some(date) = add_days(day, offset) else { continue };
            if date > self.until {
                return None;
            }
            if date >= self.from {
                return Some(date);
            }
        }
    }
}

/// The day `anchor` picks in the month starting on `first`; `None` when the month has
/// no such day (31 in a 30-day month).
fn anchor_in(first: NaiveDate, anchor: MonthAnchor) -> Option<NaiveDate> {
    let weekday_from =
        |d: NaiveDate, w: Weekday| (7 + w.num_days_from_monday() - d.weekday().num_days_from_monday()) % 7;
    match anchor {
        MonthAnchor::Day(d) => first.with_day(d),
        MonthAnchor::LastDay => last_day(first),
        MonthAnchor::Nth(n, w) => first.with_day(1 + weekday_from(first, w) + 7 * (n - 1)),
        MonthAnchor::LastWeekday(w) => {
            let last = last_day(first)?;
            let back = (7 + last.weekday().num_days_from_monday() - w.num_days_from_monday()) % 7;
            last.checked_sub_days(Days::new(u64::from(back)))
        }
    }
}

fn last_day(first: NaiveDate) -> Option<NaiveDate> {
    first.checked_add_months(chrono::Months::new(1))?.pred_opt()
}

impl Iterator for Dates {
    type Item = NaiveDate;

    fn next(&mut self) -> Option<NaiveDate> {
        match self.rule {
            Rule::Daily { interval } => {
                let d = self.cursor.filter(|d| *d <= self.until)?;
                self.cursor = add_days(d, interval);
                Some(d)
            }
            Rule::Weekly { interval, days } => self.next_weekly(interval, days),
            Rule::Monthly { interval, anchor, offset_days } => {
                self.next_monthly(interval, anchor, offset_days)
            }
        }
    }
}
