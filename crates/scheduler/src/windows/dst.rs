//! Warnings about the windows a DST change moves, skips or makes end at another wall-clock
//! time, so that an operator sees them when writing a configuration, not on the night.

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;

use super::engine::{hm, settle, Candidate, Candidates, StartResolution};
use super::schedule::Schedule;

/// What a DST change does to one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DstEffect {
    /// The local start does not exist; the window starts at the first valid time after it.
    Moved,
    /// The local start exists twice; the window starts at the first occurrence only.
    FirstOccurrence,
    /// The window is skipped: the previous one still runs when it would start.
    Skipped,
    /// The clocks go back during the window: it ends earlier on the wall clock.
    EndsEarlier,
    /// The clocks go forward during the window: it ends later on the wall clock.
    EndsLater,
}

/// One window touched by a DST change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DstWarning {
    /// The local date the rule scheduled the window on.
    pub date: NaiveDate,
    /// The zone.
    pub timezone: chrono_tz::Tz,
    /// What happens.
    pub effect: DstEffect,
    /// The same in words.
    pub message: String,
}

/// Every window from `from` through the next `months` months that a DST change moves,
/// skips or makes end at another wall-clock time (blackouts not applied: they are the
/// operator's own choice).
pub fn dst_warnings(schedule: &Schedule, from: DateTime<Utc>, months: u32) -> Vec<DstWarning> {
    let tz = schedule.timezone();
    let first = from.with_timezone(&tz).date_naive();
    let last = first.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX);
    let mut out = Vec::new();
    for candidate in Candidates::new(schedule, first, last) {
        let w = match candidate {
            Candidate::Overlapping { scheduled, previous_end } => {
                out.push(DstWarning {
                    date: scheduled.date(),
                    timezone: tz,
                    effect: DstEffect::Skipped,
                    message: format!(
                        "the window of {} at {} is skipped: the previous window, longer on the wall \
                         clock because of a DST change, runs until {}",
                        scheduled.date(),
                        scheduled.format("%H:%M"),
                        previous_end.with_timezone(&tz).format("%Y-%m-%d %H:%M%:z")
                    ),
                });
                continue;
            }
            Candidate::Window(w) if w.end <= from => continue,
            Candidate::Window(mut w) => {
                settle(&mut w, schedule.duration(), None);
                w
            }
        };
        let date = w.scheduled_local.date();
        let effect = match w.resolution {
            StartResolution::MovedOutOfGap => Some(DstEffect::Moved),
            StartResolution::FirstOfRepeated => Some(DstEffect::FirstOccurrence),
            StartResolution::Exact => None,
        };
        if let Some(effect) = effect {
            let message = w.notes.first().cloned().unwrap_or_default();
            out.push(DstWarning { date, timezone: tz, effect, message });
        }
        let wall = w.wall_clock_length();
        if wall != schedule.duration() {
            out.push(DstWarning {
                date,
                timezone: tz,
                effect: if wall < schedule.duration() {
                    DstEffect::EndsEarlier
                } else {
                    DstEffect::EndsLater
                },
                message: format!(
                    "the window of {date} lasts {} but the clocks change during it: it ends at {} \
                     local ({} on the wall clock)",
                    hm(schedule.duration()),
                    w.end_local.format("%H:%M%:z"),
                    hm(wall)
                ),
            });
        }
    }
    out
}
