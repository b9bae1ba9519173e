//! From a valid schedule to concrete windows: local dates to instants (DST gaps and
//! folds resolved explicitly), windows that would overlap the previous one skipped,
//! blackouts applied.

use chrono::{
    DateTime, Days, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::{GapInfo, Tz};
use serde::Serialize;

use super::dates::Dates;
use super::schedule::{Blackout, Schedule};

/// How far ahead the engine looks before giving up on finding more windows (a schedule
/// whose days are all blacked out, or a rule that matches no month in range).
pub const SCAN_DAYS: u64 = 3660;

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// First instant, UTC.
    pub start: DateTime<Utc>,
    /// First instant after the window, UTC; always `start + duration`.
    pub end: DateTime<Utc>,
    /// `start` on the zone's wall clock, with its offset.
    pub start_local: DateTime<FixedOffset>,
    /// `end` on the zone's wall clock, with its offset.
    pub end_local: DateTime<FixedOffset>,
    /// The zone the schedule is read in.
    pub timezone: Tz,
    /// The local date and time the rule asked for (differs from `start_local` only when
    /// that time did not exist).
    #[serde(skip)]
    pub scheduled_local: NaiveDateTime,
    /// How the scheduled local time was turned into `start`.
    #[serde(skip)]
    pub resolution: StartResolution,
    /// Human-readable remarks: a start moved out of a DST gap, a repeated hour, the
    /// clocks changing during the window.
    pub notes: Vec<String>,
}

/// How a scheduled local start became an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartResolution {
    /// The local time exists once.
    Exact,
    /// The local time exists twice (clocks went back): the first occurrence is used.
    FirstOfRepeated,
    /// The local time does not exist (clocks went forward): the window starts at the
    /// first valid instant after it.
    MovedOutOfGap,
}

/// What the engine made of one date the rule picked.
#[derive(Debug, Clone)]
pub(crate) enum Candidate {
    Window(Window),
    /// Skipped: the previous window, lengthened on the wall clock by a DST change or by
    /// a start moved out of a gap, still runs when this one would start.
    Overlapping {
        scheduled: NaiveDateTime,
        previous_end: DateTime<Utc>,
    },
}

/// Every window of `schedule` (blackouts not applied) for scheduled local dates within
/// `[first, last]`, in increasing order.
pub(crate) struct Candidates<'a> {
    schedule: &'a Schedule,
    dates: Dates,
    previous_end: Option<DateTime<Utc>>,
    /// Scheduled local times up to this one are passed over unresolved: their windows
    /// have ended (see [`next_windows`]).
    ended_by: Option<NaiveDateTime>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(schedule: &'a Schedule, first: NaiveDate, last: NaiveDate) -> Self {
        Candidates {
            schedule,
            dates: Dates::new(schedule.rule, first, last),
            previous_end: None,
            ended_by: None,
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        loop {
            let date = self.dates.next()?;
            let scheduled = date.and_time(self.schedule.start_time);
            if self.ended_by.is_some_and(|t| scheduled <= t) {
                continue;
            }
            // `None` only at the ends of chrono's calendar: such a date has no window.
            let Some(w) = window(self.schedule, scheduled) else { continue };
            if let Some(previous_end) = self.previous_end.filter(|end| w.start < *end) {
                return Some(Candidate::Overlapping { scheduled, previous_end });
            }
            self.previous_end = Some(w.end);
            return Some(Candidate::Window(w));
        }
    }
}

/// The next `count` windows that have not ended at `from` (a window in progress at `from`
/// comes first), outside every blackout. Fewer when the schedule has no more windows in
/// the next [`SCAN_DAYS`] days.
pub fn next_windows(schedule: &Schedule, from: DateTime<Utc>, count: usize) -> Vec<Window> {
    let mut out = Vec::with_capacity(count.min(100));
    if count == 0 {
        return out;
    }
    let tz = schedule.timezone;
    let local = from.with_timezone(&tz);
    let today = local.date_naive();
    // A window in progress started at most 24 hours ago, so on the previous local date.
    let first = today.pred_opt().unwrap_or(today);
    let last = today.checked_add_days(Days::new(SCAN_DAYS)).unwrap_or(NaiveDate::MAX);
    let mut candidates = Candidates::new(schedule, first, last);
    // When the offset is the same two days before `from` (no clock change since the
    // previous local date), a window scheduled at local S has ended by `from` exactly
    // when S + duration is not after `from`'s local time; such windows cannot overlap a
    // later one either, so they need not be resolved at all (half the work of a daily
    // schedule).
    let before = from.checked_sub_signed(TimeDelta::days(2)).unwrap_or(from);
    if tz.offset_from_utc_datetime(&before.naive_utc()).fix() == local.offset().fix() {
        candidates.ended_by = local.naive_local().checked_sub_signed(schedule.duration);
    }
    for candidate in candidates {
        let Candidate::Window(w) = candidate else { continue };
        if w.end <= from || blacked_out(&schedule.blackouts, w.start, w.end) {
            continue;
        }
        if let Some(previous) = out.last_mut() {
            settle(previous, schedule.duration, Some(&w));
        }
        out.push(w);
        if out.len() == count {
            break;
        }
    }
    if let Some(last) = out.last_mut() {
        settle(last, schedule.duration, None);
    }
    out
}

/// Sets the end's local offset and the notes of a window [`window`] made. The offset at
/// the end is looked up, unless the next window starts within two days at the same
/// offset as this one: the clocks change at most once in two days, so they did not
/// change in between (and the end lies in between: windows never overlap).
pub(crate) fn settle(w: &mut Window, duration: TimeDelta, next: Option<&Window>) {
    let same_offset_until_next = next.is_some_and(|n| {
        n.start_local.offset() == w.start_local.offset() && n.start - w.start <= TimeDelta::days(2)
    });
    if !same_offset_until_next {
        w.end_local = w.end.with_timezone(&w.timezone).fixed_offset();
    }
    // The wall-clock length differs from the duration exactly when the offset changed.
    if w.resolution != StartResolution::Exact || w.start_local.offset() != w.end_local.offset() {
        w.notes = notes(w, duration);
    }
}

/// Whether `[start, end)` overlaps a blackout; `blackouts` sorted and merged.
fn blacked_out(blackouts: &[Blackout], start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    let i = blackouts.partition_point(|b| b.to <= start);
    blackouts.get(i).is_some_and(|b| b.from < end)
}

/// The window scheduled at local `scheduled`, still to be [`settle`]d.
fn window(schedule: &Schedule, scheduled: NaiveDateTime) -> Option<Window> {
    let tz = schedule.timezone;
    let (start, resolution) = match tz.from_local_datetime(&scheduled) {
        LocalResult::Single(t) => (t, StartResolution::Exact),
        LocalResult::Ambiguous(a, b) => (a.min(b), StartResolution::FirstOfRepeated),
        LocalResult::None => (after_gap(&tz, scheduled)?, StartResolution::MovedOutOfGap),
    };
    let start_local = start.fixed_offset();
    let start = start.with_timezone(&Utc);
    let end = start.checked_add_signed(schedule.duration)?;
    Some(Window {
        start,
        end,
        start_local,
        // Provisional: `settle` sets the offset at the end.
        end_local: end.with_timezone(start_local.offset()),
        timezone: tz,
        scheduled_local: scheduled,
        resolution,
        notes: Vec::new(),
    })
}

impl Window {
    /// How long the window looks on the wall clock (differs from its duration when the
    /// clocks change during it).
    pub fn wall_clock_length(&self) -> TimeDelta {
        self.end_local.naive_local() - self.start_local.naive_local()
    }
}

fn notes(w: &Window, duration: TimeDelta) -> Vec<String> {
    let mut notes = Vec::new();
    let date = w.scheduled_local.date();
    let at = w.scheduled_local.format("%H:%M");
    match w.resolution {
        StartResolution::Exact => {}
        StartResolution::FirstOfRepeated => notes.push(format!(
            "{at} occurs twice on {date} in {} (clocks go back); the window starts at the first \
             occurrence ({})",
            w.timezone,
            w.start_local.offset()
        )),
        StartResolution::MovedOutOfGap => notes.push(format!(
            "{at} does not exist on {date} in {} (clocks go forward); the window starts at the \
             first valid local time, {}",
            w.timezone,
            w.start_local.format("%Y-%m-%d %H:%M:%S%:z")
        )),
    }
    let wall = w.wall_clock_length();
    if wall != duration {
        notes.push(format!(
            "the clocks change during this window: it lasts {} but ends at {} local ({} on the wall clock)",
            hm(duration),
            w.end_local.format("%H:%M%:z"),
            hm(wall)
        ));
    }
    notes
}

/// `4h`, `4h30m`, `45m`.
pub(crate) fn hm(d: TimeDelta) -> String {
    let m = d.num_minutes();
    match (m / 60, m % 60) {
        (h, 0) => format!("{h}h"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{}m", m.abs()),
    }
}

/// The first valid instant after a local time that falls in a gap: chrono-tz's answer,
/// or, where it has none, gallop forward on the wall clock until a time exists, then
/// bisect to the second. Gaps are at most a
/// day long (Samoa skipped 2011-12-30), so the search stops after two.
fn after_gap(tz: &Tz, gap: NaiveDateTime) -> Option<DateTime<Tz>> {
    if let Some(end) = GapInfo::new(&gap, tz).and_then(|g| g.end) {
        return Some(end);
    }
    let exists = |s: i64| match gap.checked_add_signed(TimeDelta::seconds(s)) {
        Some(t) => !matches!(tz.from_local_datetime(&t), LocalResult::None),
        None => false,
    };
    let (mut missing, mut valid) = (0i64, 1i64);
    while !exists(valid) {
        missing = valid;
        valid *= 2;
        if valid > 2 * 86_400 {
            return None;
        }
    }
    while valid - missing > 1 {
        let mid = missing + (valid - missing) / 2;
        if exists(mid) {
            valid = mid;
        } else {
            missing = mid;
        }
    }
    let t = gap.checked_add_signed(TimeDelta::seconds(valid))?;
    tz.from_local_datetime(&t).earliest()
}
