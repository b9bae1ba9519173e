//! Maintenance windows: the Acceptance cases of issue 4, one test each, named as sentences.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use hotpatch_scheduler::windows::{
    dst_warnings, next_windows, Blackout, Day, DstEffect, Frequency, NthWeekday, RecurrenceSpec, Schedule,
    ScheduleSpec, StartResolution, Window,
};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn recurrence(frequency: Frequency) -> RecurrenceSpec {
    RecurrenceSpec {
        frequency,
        interval: 1,
        days_of_week: Vec::new(),
        day_of_month: None,
        nth_weekday: None,
        offset_days: 0,
    }
}

fn daily() -> RecurrenceSpec {
    recurrence(Frequency::Daily)
}

fn spec(tz: &str, recurrence: RecurrenceSpec, start: &str, minutes: i64) -> ScheduleSpec {
    ScheduleSpec {
        recurrence,
        start_time: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
        duration: TimeDelta::minutes(minutes),
        timezone: tz.parse::<Tz>().unwrap(),
        blackouts: Vec::new(),
    }
}

fn schedule(tz: &str, recurrence: RecurrenceSpec, start: &str, minutes: i64) -> Schedule {
    Schedule::new(spec(tz, recurrence, start, minutes)).unwrap()
}

/// `(start, end)` as RFC 3339 UTC, and the local start with its offset.
fn brief(w: &Window) -> (String, String, String) {
    (
        w.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        w.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        w.start_local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    )
}

fn starts(ws: &[Window]) -> Vec<String> {
    ws.iter().map(|w| w.start_local.format("%Y-%m-%d %H:%M%:z").to_string()).collect()
}

#[test]
fn a_berlin_start_at_0230_on_the_spring_forward_night_moves_to_0300_and_says_so() {
    let s = schedule("Europe/Berlin", daily(), "02:30", 120);
    let ws = next_windows(&s, utc("2025-03-29T12:00:00Z"), 2);
    assert_eq!(
        brief(&ws[0]),
        ("2025-03-30T01:00:00Z".into(), "2025-03-30T03:00:00Z".into(), "2025-03-30T03:00:00+02:00".into())
    );
    assert_eq!(ws[0].resolution, StartResolution::MovedOutOfGap);
    assert!(ws[0].notes[0].contains("02:30 does not exist on 2025-03-30"), "{:?}", ws[0].notes);
    assert!(ws[0].notes[0].contains("03:00:00+02:00"), "{:?}", ws[0].notes);
    assert_eq!(brief(&ws[1]).2, "2025-03-31T02:30:00+02:00");
    assert!(ws[1].notes.is_empty());
}

#[test]
fn a_berlin_start_at_0230_on_the_autumn_night_gives_one_window_at_the_first_occurrence() {
    let s = schedule("Europe/Berlin", daily(), "02:30", 60);
    let ws = next_windows(&s, utc("2025-10-25T12:00:00Z"), 2);
    assert_eq!(
        brief(&ws[0]),
        ("2025-10-26T00:30:00Z".into(), "2025-10-26T01:30:00Z".into(), "2025-10-26T02:30:00+02:00".into())
    );
    assert_eq!(ws[0].resolution, StartResolution::FirstOfRepeated);
    assert!(ws[0].notes[0].contains("occurs twice"), "{:?}", ws[0].notes);
    assert_eq!(brief(&ws[1]).2, "2025-10-27T02:30:00+01:00");
    // Asked again between the two 02:30s, and after the window: never a second one that night.
    let ws = next_windows(&s, utc("2025-10-26T01:00:00Z"), 1);
    assert_eq!(brief(&ws[0]).0, "2025-10-26T00:30:00Z");
    let ws = next_windows(&s, utc("2025-10-26T01:30:00Z"), 1);
    assert_eq!(brief(&ws[0]).2, "2025-10-27T02:30:00+01:00");
}

#[test]
fn new_york_moves_a_sunday_0200_start_to_0300_in_march_and_takes_the_first_0130_in_november() {
    let mut r = recurrence(Frequency::Weekly);
    r.days_of_week = vec![Day::Sunday];
    let s = schedule("America/New_York", r.clone(), "02:00", 240);
    let ws = next_windows(&s, utc("2025-03-08T00:00:00Z"), 2);
    assert_eq!(
        brief(&ws[0]),
        ("2025-03-09T07:00:00Z".into(), "2025-03-09T11:00:00Z".into(), "2025-03-09T03:00:00-04:00".into())
    );
    assert_eq!(brief(&ws[1]).2, "2025-03-16T02:00:00-04:00");
    let s = schedule("America/New_York", r, "01:30", 60);
    let ws = next_windows(&s, utc("2025-11-01T00:00:00Z"), 2);
    assert_eq!(
        brief(&ws[0]),
        ("2025-11-02T05:30:00Z".into(), "2025-11-02T06:30:00Z".into(), "2025-11-02T01:30:00-04:00".into())
    );
    assert_eq!(ws[0].end_local.format("%H:%M%:z").to_string(), "01:30-05:00");
    assert_eq!(brief(&ws[1]).2, "2025-11-09T01:30:00-05:00");
}

#[test]
fn lord_howe_half_hour_dst_moves_0215_to_0230_and_takes_the_first_0145() {
    let s = schedule("Australia/Lord_Howe", daily(), "02:15", 60);
    let ws = next_windows(&s, utc("2025-10-04T00:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).2, "2025-10-05T02:30:00+11:00");
    assert_eq!(brief(&ws[0]).0, "2025-10-04T15:30:00Z");
    assert_eq!(ws[0].resolution, StartResolution::MovedOutOfGap);
    assert_eq!(brief(&ws[1]).2, "2025-10-06T02:15:00+11:00");
    let s = schedule("Australia/Lord_Howe", daily(), "01:45", 60);
    let ws = next_windows(&s, utc("2025-04-05T00:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).0, "2025-04-05T14:45:00Z");
    assert_eq!(brief(&ws[0]).2, "2025-04-06T01:45:00+11:00");
    assert_eq!(ws[0].resolution, StartResolution::FirstOfRepeated);
    // One hour elapsed crosses 02:00 (+11:00) -> 01:30 (+10:30): ends at 02:15 on the clock.
    assert_eq!(ws[0].end_local.format("%H:%M%:z").to_string(), "02:15+10:30");
    assert_eq!(brief(&ws[1]).2, "2025-04-07T01:45:00+10:30");
}

#[test]
fn kathmandu_and_kolkata_windows_open_at_their_quarter_and_half_hour_offsets() {
    let ws =
        next_windows(&Schedule::default_off_peak(chrono_tz::Asia::Kathmandu), utc("2025-06-01T00:00:00Z"), 1);
    assert_eq!(
        brief(&ws[0]),
        ("2025-06-01T19:15:00Z".into(), "2025-06-01T23:15:00Z".into(), "2025-06-02T01:00:00+05:45".into())
    );
    let ws =
        next_windows(&Schedule::default_off_peak(chrono_tz::Asia::Kolkata), utc("2025-06-01T00:00:00Z"), 1);
    assert_eq!(
        brief(&ws[0]),
        ("2025-06-01T19:30:00Z".into(), "2025-06-01T23:30:00Z".into(), "2025-06-02T01:00:00+05:30".into())
    );
}

#[test]
fn chatham_moves_a_0300_start_out_of_its_0245_gap_and_takes_the_first_0300_in_april() {
    let s = schedule("Pacific/Chatham", daily(), "03:00", 60);
    let ws = next_windows(&s, utc("2025-09-27T00:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).2, "2025-09-28T03:45:00+13:45");
    assert_eq!(brief(&ws[0]).0, "2025-09-27T14:00:00Z");
    assert_eq!(ws[0].resolution, StartResolution::MovedOutOfGap);
    assert_eq!(brief(&ws[1]).2, "2025-09-29T03:00:00+13:45");
    let ws = next_windows(&s, utc("2025-04-05T00:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).2, "2025-04-06T03:00:00+13:45");
    assert_eq!(brief(&ws[0]).0, "2025-04-05T13:15:00Z");
    assert_eq!(brief(&ws[1]).2, "2025-04-07T03:00:00+12:45");
}

#[test]
fn santiago_where_dst_changes_at_midnight_moves_a_midnight_start_and_keeps_one_2330() {
    // 2025-09-07 00:00 -04 -> 01:00 -03: midnight does not exist.
    let s = schedule("America/Santiago", daily(), "00:00", 120);
    let ws = next_windows(&s, utc("2025-09-06T00:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).2, "2025-09-06T00:00:00-04:00");
    assert_eq!(brief(&ws[1]).2, "2025-09-07T01:00:00-03:00");
    assert_eq!(ws[1].resolution, StartResolution::MovedOutOfGap);
    // 2025-04-06 00:00 -03 -> 2025-04-05 23:00 -04: 23:30 on the 5th happens twice.
    let s = schedule("America/Santiago", daily(), "23:30", 60);
    let ws = next_windows(&s, utc("2025-04-05T12:00:00Z"), 2);
    assert_eq!(brief(&ws[0]).0, "2025-04-06T02:30:00Z");
    assert_eq!(brief(&ws[0]).2, "2025-04-05T23:30:00-03:00");
    assert_eq!(ws[0].resolution, StartResolution::FirstOfRepeated);
    assert_eq!(brief(&ws[1]).2, "2025-04-06T23:30:00-04:00");
}

#[test]
fn a_2200_window_of_six_hours_crosses_midnight_and_is_found_while_it_runs() {
    let s = schedule("Europe/Berlin", daily(), "22:00", 360);
    let ws = next_windows(&s, utc("2025-07-01T12:00:00Z"), 2);
    assert_eq!(
        brief(&ws[0]),
        ("2025-07-01T20:00:00Z".into(), "2025-07-02T02:00:00Z".into(), "2025-07-01T22:00:00+02:00".into())
    );
    assert_eq!(ws[0].end_local.format("%Y-%m-%d %H:%M").to_string(), "2025-07-02 04:00");
    let ws = next_windows(&s, utc("2025-07-02T01:00:00Z"), 1);
    assert_eq!(brief(&ws[0]).0, "2025-07-01T20:00:00Z");
}

#[test]
fn day_of_month_31_skips_february_and_the_30_day_months() {
    let mut r = recurrence(Frequency::Monthly);
    r.day_of_month = Some(31);
    let ws = next_windows(&schedule("UTC", r, "03:00", 60), utc("2025-01-15T00:00:00Z"), 4);
    assert_eq!(
        starts(&ws),
        [
            "2025-01-31 03:00+00:00",
            "2025-03-31 03:00+00:00",
            "2025-05-31 03:00+00:00",
            "2025-07-31 03:00+00:00"
        ]
    );
}

#[test]
fn day_of_month_minus_one_is_the_last_day_also_in_leap_years() {
    let mut r = recurrence(Frequency::Monthly);
    r.day_of_month = Some(-1);
    let s = schedule("UTC", r, "03:00", 60);
    let ws = next_windows(&s, utc("2024-01-15T00:00:00Z"), 4);
    assert_eq!(
        starts(&ws),
        [
            "2024-01-31 03:00+00:00",
            "2024-02-29 03:00+00:00",
            "2024-03-31 03:00+00:00",
            "2024-04-30 03:00+00:00"
        ]
    );
    let feb = |year: i32| starts(&next_windows(&s, utc(&format!("{year}-02-02T00:00:00Z")), 1)).remove(0);
    assert_eq!(feb(2025), "2025-02-28 03:00+00:00");
    assert_eq!(feb(2000), "2000-02-29 03:00+00:00");
    assert_eq!(feb(2100), "2100-02-28 03:00+00:00");
}

#[test]
fn second_tuesday_plus_four_days_is_the_saturday_after_patch_tuesday() {
    let mut r = recurrence(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday { week: 2, day: Day::Tuesday });
    r.offset_days = 4;
    let ws = next_windows(&schedule("Europe/London", r, "01:00", 240), utc("2025-09-01T00:00:00Z"), 3);
    assert_eq!(starts(&ws), ["2025-09-13 01:00+01:00", "2025-10-18 01:00+01:00", "2025-11-15 01:00+00:00"]);
}

#[test]
fn an_offset_from_the_nth_weekday_crosses_a_month_end_either_way() {
    // Last Tuesday + 4: 2025-09-30 -> 2025-10-04, 2025-10-28 -> 2025-11-01.
    let mut r = recurrence(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday { week: -1, day: Day::Tuesday });
    r.offset_days = 4;
    let ws = next_windows(&schedule("UTC", r, "01:00", 60), utc("2025-09-01T00:00:00Z"), 3);
    assert_eq!(starts(&ws), ["2025-10-04 01:00+00:00", "2025-11-01 01:00+00:00", "2025-11-29 01:00+00:00"]);
    // Second Tuesday + 20 days: 2025-12-09 -> 2025-12-29, 2026-01-13 -> 2026-02-02.
    let mut r = recurrence(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday { week: 2, day: Day::Tuesday });
    r.offset_days = 20;
    let ws = next_windows(&schedule("UTC", r, "01:00", 60), utc("2025-12-20T00:00:00Z"), 2);
    assert_eq!(starts(&ws), ["2025-12-29 01:00+00:00", "2026-02-02 01:00+00:00"]);
    // First Monday - 3 days: 2025-12-01 -> 2025-11-28 (found from within November).
    let mut r = recurrence(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday { week: 1, day: Day::Monday });
    r.offset_days = -3;
    let ws = next_windows(&schedule("UTC", r, "01:00", 60), utc("2025-11-10T00:00:00Z"), 2);
    assert_eq!(starts(&ws), ["2025-11-28 01:00+00:00", "2026-01-02 01:00+00:00"]);
}

#[test]
fn a_blackout_spanning_christmas_drops_every_window_it_touches_and_gives_the_next_ones() {
    let mut sp = spec("Europe/Berlin", daily(), "01:00", 240);
    sp.blackouts = vec![Blackout { from: utc("2025-12-19T02:00:00Z"), to: utc("2026-01-02T00:00:00Z") }];
    let s = Schedule::new(sp).unwrap();
    let ws = next_windows(&s, utc("2025-12-17T12:00:00Z"), 3);
    // The 19th (00:00Z-04:00Z) overlaps the blackout by two hours: dropped, not shortened.
    assert_eq!(starts(&ws), ["2025-12-18 01:00+01:00", "2026-01-02 01:00+01:00", "2026-01-03 01:00+01:00"]);
    assert!(ws.iter().all(|w| w.end - w.start == TimeDelta::hours(4)));
}

#[test]
fn a_schedule_whose_windows_are_all_blacked_out_ends_the_search_with_no_windows() {
    let mut sp = spec("UTC", daily(), "01:00", 60);
    sp.blackouts = vec![Blackout { from: utc("2000-01-01T00:00:00Z"), to: utc("2100-01-01T00:00:00Z") }];
    assert!(next_windows(&Schedule::new(sp).unwrap(), utc("2025-01-01T00:00:00Z"), 3).is_empty());
}

#[test]
fn an_interval_counts_days_weeks_and_months_from_a_fixed_origin() {
    let mut r = recurrence(Frequency::Monthly);
    r.interval = 3;
    r.day_of_month = Some(1);
    let ws = next_windows(&schedule("UTC", r, "01:00", 60), utc("2025-02-01T00:00:00Z"), 3);
    assert_eq!(starts(&ws), ["2025-04-01 01:00+00:00", "2025-07-01 01:00+00:00", "2025-10-01 01:00+00:00"]);
    let mut r = recurrence(Frequency::Weekly);
    r.interval = 2;
    r.days_of_week = vec![Day::Monday, Day::Friday];
    let ws = next_windows(&schedule("UTC", r, "01:00", 60), utc("2025-06-01T00:00:00Z"), 4);
    let gaps: Vec<i64> = ws.windows(2).map(|p| (p[1].start - p[0].start).num_days()).collect();
    assert!(gaps == [4, 10, 4] || gaps == [10, 4, 10], "{:?}", starts(&ws));
}

#[test]
fn the_default_off_peak_window_is_0100_local_for_four_hours_every_day() {
    let ws = next_windows(
        &Schedule::default_off_peak(chrono_tz::America::New_York),
        utc("2025-07-01T12:00:00Z"),
        2,
    );
    assert_eq!(
        brief(&ws[0]),
        ("2025-07-02T05:00:00Z".into(), "2025-07-02T09:00:00Z".into(), "2025-07-02T01:00:00-04:00".into())
    );
    assert_eq!(brief(&ws[1]).2, "2025-07-03T01:00:00-04:00");
}

#[test]
fn a_24_hour_window_lengthened_by_spring_forward_skips_the_next_days_window() {
    let s = schedule("Europe/Berlin", daily(), "01:00", 24 * 60);
    let ws = next_windows(&s, utc("2025-03-29T12:00:00Z"), 3);
    assert_eq!(starts(&ws), ["2025-03-29 01:00+01:00", "2025-03-30 01:00+01:00", "2025-04-01 01:00+02:00"]);
    let warnings = dst_warnings(&s, utc("2025-03-01T00:00:00Z"), 1);
    assert!(warnings.iter().any(|w| w.effect == DstEffect::Skipped && w.date.to_string() == "2025-03-31"));
}

#[test]
fn dst_warnings_list_the_windows_moved_or_ending_at_another_wall_clock_time_within_a_year() {
    let warnings =
        dst_warnings(&Schedule::default_off_peak(chrono_tz::Europe::Berlin), utc("2025-01-01T00:00:00Z"), 12);
    let summary: Vec<(String, DstEffect)> = warnings.iter().map(|w| (w.date.to_string(), w.effect)).collect();
    assert_eq!(
        summary,
        [
            ("2025-03-30".to_string(), DstEffect::EndsLater),
            ("2025-10-26".to_string(), DstEffect::EndsEarlier)
        ]
    );
    let s = schedule("Europe/Berlin", daily(), "02:30", 60);
    let summary: Vec<(String, DstEffect)> = dst_warnings(&s, utc("2025-01-01T00:00:00Z"), 12)
        .iter()
        .map(|w| (w.date.to_string(), w.effect))
        .collect();
    assert_eq!(
        summary,
        [
            ("2025-03-30".to_string(), DstEffect::Moved),
            ("2025-10-26".to_string(), DstEffect::FirstOccurrence),
            // 02:30 +02:00 plus one hour is 02:30 +01:00: no time at all on the wall clock.
            ("2025-10-26".to_string(), DstEffect::EndsEarlier),
        ]
    );
    assert!(dst_warnings(
        &Schedule::default_off_peak(chrono_tz::Asia::Kolkata),
        utc("2025-01-01T00:00:00Z"),
        12
    )
    .is_empty());
}

#[test]
fn validation_reports_every_invalid_field_with_its_path() {
    let mut r = recurrence(Frequency::Monthly);
    r.interval = 0;
    r.day_of_month = Some(32);
    r.nth_weekday = Some(NthWeekday { week: 5, day: Day::Monday });
    r.offset_days = 31;
    r.days_of_week = vec![Day::Monday];
    let mut sp = spec("UTC", r, "01:00", 29);
    sp.start_time = NaiveTime::from_hms_opt(1, 0, 30).unwrap();
    sp.blackouts = vec![Blackout { from: utc("2025-01-02T00:00:00Z"), to: utc("2025-01-01T00:00:00Z") }];
    let fields: Vec<String> = Schedule::new(sp).unwrap_err().into_iter().map(|e| e.field).collect();
    for f in [
        "recurrence.interval",
        "recurrence.days_of_week",
        "recurrence.nth_weekday",
        "recurrence.offset_days",
        "start_time",
        "duration",
        "blackouts[0].to",
    ] {
        assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
    }
    let check = |r: RecurrenceSpec, minutes: i64| {
        Schedule::new(spec("UTC", r, "01:00", minutes))
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect::<Vec<_>>()
    };
    let mut r = recurrence(Frequency::Monthly);
    r.day_of_month = Some(-2);
    assert_eq!(check(r, 60), ["recurrence.day_of_month"]);
    let mut r = recurrence(Frequency::Monthly);
    r.nth_weekday = Some(NthWeekday { week: 0, day: Day::Monday });
    assert_eq!(check(r, 60), ["recurrence.nth_weekday.week"]);
    assert_eq!(check(recurrence(Frequency::Monthly), 60), ["recurrence.day_of_month"]);
    assert_eq!(check(recurrence(Frequency::Weekly), 60), ["recurrence.days_of_week"]);
    let mut r = daily();
    r.offset_days = 2;
    assert_eq!(check(r, 60), ["recurrence.offset_days"]);
    assert_eq!(check(daily(), 24 * 60 + 1), ["duration"]);
    assert!(check(daily(), 24 * 60).is_empty());
    assert!(check(daily(), 30).is_empty());
}

#[test]
fn asking_for_no_windows_gives_none() {
    assert!(next_windows(&Schedule::default_off_peak(Tz::UTC), utc("2025-01-01T00:00:00Z"), 0).is_empty());
}
