//! Maintenance windows in local time (DESIGN §3 "Window").
//!
//! A [`Schedule`] (recurrence, local start time, duration, zone, blackouts) is built from a
//! maintenance configuration parsed once in `hotpatch_domain::schedule`; [`next_windows`] then
//! turns it into concrete windows after any instant, and [`dst_warnings`] lists the windows a
//! DST change moves, skips or stretches. Local times are resolved explicitly: a start in a DST
//! gap moves forward to the first valid instant (and says so), a start in a fold takes the
//! first occurrence only, and every window lasts its duration in elapsed time, across
//! midnight if need be.

mod dates;
mod dst;
mod engine;
mod schedule;

/// The zone type schedules are read in (chrono-tz's).
pub use chrono_tz::Tz;
pub use dst::{dst_warnings, DstEffect, DstWarning};
pub use engine::{next_windows, StartResolution, Window, SCAN_DAYS};
pub use schedule::{
    Blackout, Day, Frequency, NthWeekday, RecurrenceSpec, Schedule, ScheduleSpec, MAX_BLACKOUTS,
    MAX_DURATION, MAX_INTERVAL, MAX_OFFSET_DAYS, MIN_DURATION,
};
