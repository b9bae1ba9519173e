//! Properties of the window engine over every chrono-tz zone, random recurrences and
//! random instants: windows strictly increase, never overlap, last their duration, start
//! at a valid local time that matches the rule (or at the documented gap shift) and
//! never touch a blackout.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::TZ_VARIANTS;
use hotpatch_scheduler::windows::{
    next_windows, Blackout, Day, Frequency, NthWeekday, RecurrenceSpec, Schedule, ScheduleSpec,
    StartResolution, Window,
};
use proptest::prelude::*;

const DAYS: [Day; 7] =
    [Day::Monday, Day::Tuesday, Day::Wednesday, Day::Thursday, Day::Friday, Day::Saturday, Day::Sunday];

fn recurrences() -> impl Strategy<Value = RecurrenceSpec> {
    let base = |frequency, interval| RecurrenceSpec {
        frequency,
        interval,
        days_of_week: Vec::new(),
        day_of_month: None,
        nth_weekday: None,
        offset_days: 0,
    };
    prop_oneof![
        (1i64..=10).prop_map(move |i| base(Frequency::Daily, i)),
        (1i64..=4, proptest::sample::subsequence(DAYS.to_vec(), 1..=7)).prop_map(move |(i, days)| {
            RecurrenceSpec { days_of_week: days, ..base(Frequency::Weekly, i) }
        }),
        (1i64..=12, prop_oneof![Just(-1i64), 1i64..=31], -30i64..=30).prop_map(move |(i, d, o)| {
            RecurrenceSpec { day_of_month: Some(d), offset_days: o, ..base(Frequency::Monthly, i) }
        }),
        (1i64..=12, prop_oneof![Just(-1i64), 1i64..=4], 0usize..7, -30i64..=30).prop_map(
            move |(i, w, d, o)| {
                RecurrenceSpec {
                    nth_weekday: Some(NthWeekday { week: w, day: DAYS[d] }),
                    offset_days: o,
                    ..base(Frequency::Monthly, i)
                }
            }
        ),
    ]
}

/// Whether the rule picks `date` (written independently of the engine).
fn rule_picks(r: &RecurrenceSpec, date: NaiveDate) -> bool {
    let n = i64::from(date.num_days_from_ce());
    match r.frequency {
        Frequency::Daily => n % r.interval == 0,
        Frequency::Weekly => {
            (n - 1).div_euclid(7) % r.interval == 0
                && r.days_of_week.iter().any(|d| Weekday::from(*d) == date.weekday())
        }
        Frequency::Monthly => {
            let shift = Days::new(r.offset_days.unsigned_abs());
            let base = if r.offset_days >= 0 { date - shift } else { date + shift };
            let month = i64::from(base.year()) * 12 + i64::from(base.month0());
            let is_last = |d: NaiveDate, step: u64| (d + Days::new(step)).month() != d.month();
            month % r.interval == 0
                && match (r.day_of_month, r.nth_weekday) {
                    (Some(-1), _) => is_last(base, 1),
                    (Some(d), _) => i64::from(base.day()) == d,
                    (None, Some(nth)) => {
                        Weekday::from(nth.day) == base.weekday()
                            && if nth.week == -1 {
                                is_last(base, 7)
                            } else {
                                i64::from((base.day() - 1) / 7 + 1) == nth.week
                            }
                    }
                    (None, None) => false,
                }
        }
    }
}

/// Every property of one answer of the engine.
fn check(spec: &ScheduleSpec, from: DateTime<Utc>, count: usize, ws: &[Window]) -> Result<(), TestCaseError> {
    let tz = spec.timezone;
    prop_assert!(ws.len() <= count);
    if spec.recurrence.frequency != Frequency::Monthly && spec.blackouts.is_empty() {
        prop_assert_eq!(ws.len(), count, "daily and weekly schedules always have more windows");
    }
    for w in ws {
        prop_assert!(w.end > from, "{:?} ended before {}", w, from);
        prop_assert_eq!(w.end - w.start, spec.duration);
        prop_assert_eq!(w.start_local, w.start.with_timezone(&tz).fixed_offset());
        prop_assert_eq!(w.end_local, w.end.with_timezone(&tz).fixed_offset());
        prop_assert_eq!(w.scheduled_local.time(), spec.start_time);
        prop_assert!(rule_picks(&spec.recurrence, w.scheduled_local.date()), "rule does not pick {:?}", w);
        match (w.resolution, tz.from_local_datetime(&w.scheduled_local)) {
            (StartResolution::Exact, LocalResult::Single(t)) => {
                prop_assert_eq!(t.with_timezone(&Utc), w.start);
                prop_assert!(w.notes.is_empty() || w.wall_clock_length() != spec.duration);
            }
            (StartResolution::FirstOfRepeated, LocalResult::Ambiguous(a, b)) => {
                prop_assert_eq!(a.min(b).with_timezone(&Utc), w.start);
                prop_assert!(!w.notes.is_empty());
            }
            (StartResolution::MovedOutOfGap, LocalResult::None) => {
                // The first valid instant after the gap: a second earlier is still before it.
                prop_assert!(w.start_local.naive_local() > w.scheduled_local);
                let before = (w.start - TimeDelta::seconds(1)).with_timezone(&tz).naive_local();
                prop_assert!(before < w.scheduled_local, "{:?}: {} is not the gap's end", w, before);
                prop_assert!(w.notes[0].contains("does not exist"));
            }
            (resolution, local) => {
                prop_assert!(false, "{:?} resolved as {:?} but is {:?}", w, resolution, local)
            }
        }
        for b in &spec.blackouts {
            prop_assert!(w.end <= b.from || w.start >= b.to, "{:?} touches {:?}", w, b);
        }
    }
    for pair in ws.windows(2) {
        prop_assert!(pair[0].start < pair[1].start);
        prop_assert!(pair[0].end <= pair[1].start, "{:?} overlaps {:?}", pair[0], pair[1]);
    }
    Ok(())
}

fn instant(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

/// 1970 to 2100.
const EPOCH_SPAN: std::ops::Range<i64> = 0..4_102_444_800;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn windows_of_random_schedules_in_random_zones_keep_every_property(
        zone in 0..TZ_VARIANTS.len(),
        recurrence in recurrences(),
        (hour, minute) in (0u32..24, 0u32..60),
        minutes in 30i64..=1440,
        from in EPOCH_SPAN,
        count in 1usize..8,
        blackouts in proptest::collection::vec((0i64..400 * 86_400, 3600i64..30 * 86_400), 0..4),
    ) {
        let from = instant(from);
        let spec = ScheduleSpec {
            recurrence,
            start_time: NaiveTime::from_hms_opt(hour, minute, 0).unwrap(),
            duration: TimeDelta::minutes(minutes),
            timezone: TZ_VARIANTS[zone],
            blackouts: blackouts
                .into_iter()
                .map(|(at, len)| Blackout {
                    from: from + TimeDelta::seconds(at),
                    to: from + TimeDelta::seconds(at + len),
                })
                .collect(),
        };
        let schedule = Schedule::new(spec.clone()).unwrap();
        let ws = next_windows(&schedule, from, count);
        check(&spec, from, count, &ws)?;
        // Asking again from the start of the second window gives the same windows from there
        if ws.len() >= 2 {
            let again = next_windows(&schedule, ws[1].start, count - 1);
            // (Possibly more of them: the search reaches SCAN_DAYS past its own start.)
            prop_assert!(again.len() >= ws.len() - 1);
            prop_assert_eq!(&again[..ws.len() - 1], &ws[1..]);
        }
    }
}

#[test]
fn every_zone_keeps_the_properties_for_two_years_of_daily_off_peak_and_late_windows() {
    for tz in TZ_VARIANTS {
        for (start, minutes) in [("01:00", 240), ("02:30", 90), ("23:30", 24 * 60), ("00:00", 30)] {
            let spec = ScheduleSpec {
                recurrence: RecurrenceSpec {
                    frequency: Frequency::Daily,
                    interval: 1,
                    days_of_week: Vec::new(),
                    day_of_month: None,
                    nth_weekday: None,
                    offset_days: 0,
                },
                start_time: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
                duration: TimeDelta::minutes(minutes),
                timezone: tz,
                blackouts: Vec::new(),
            };
            let schedule = Schedule::new(spec.clone()).unwrap();
            let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
            let ws = next_windows(&schedule, from, 731);
            assert_eq!(ws.len(), 731, "{tz} {start}");
            check(&spec, from, 731, &ws).map_err(|e| format!("{tz} {start}: {e}")).unwrap();
        }
    }
}
