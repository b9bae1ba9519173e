//! A parsed maintenance configuration turned into the schedule the window engine runs: in its
//! own zone when it has one, else on the machine's clock.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use hotpatch_domain::schedule::{ConfigurationSpec, MaintenanceConfiguration, Scope};
use hotpatch_scheduler::windows::{
    next_windows, Blackout, Day, Frequency, NthWeekday, RecurrenceSpec, Schedule, ScheduleSpec,
};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// "Second Tuesday + 4 days, 02:30 for 3 hours", as the API tests send it.
fn second_tuesday_plus_four() -> RecurrenceSpec {
    RecurrenceSpec {
        nth_weekday: Some(NthWeekday { week: 2, day: Day::Tuesday }),
        offset_days: 4,
        ..RecurrenceSpec::every(Frequency::Monthly, 1)
    }
}

fn configuration(timezone: Option<&str>, blackouts: Vec<Blackout>) -> MaintenanceConfiguration {
    MaintenanceConfiguration::parse(ConfigurationSpec {
        name: "patch-saturday".to_owned(),
        recurrence: second_tuesday_plus_four(),
        start_time: "02:30".to_owned(),
        duration: "PT3H".to_owned(),
        timezone: timezone.map(str::to_owned),
        reboot: Default::default(),
        classifications: vec!["critical".to_owned()],
        kb_include: Vec::new(),
        kb_exclude: Vec::new(),
        blackouts,
        scope: Scope::default(),
    })
    .unwrap()
}

fn starts(s: &Schedule, from: &str, count: usize) -> Vec<String> {
    next_windows(s, utc(from), count).iter().map(|w| w.start.to_rfc3339()).collect()
}

#[test]
fn a_configuration_with_a_zone_of_its_own_is_read_on_that_zones_clock() {
    let s = Schedule::of_configuration(&configuration(Some("Europe/Berlin"), Vec::new()), Tz::Asia__Kolkata);
    assert_eq!(s.timezone(), Tz::Europe__Berlin);
    // Second Tuesday of September 2025 + 4 days, 02:30 CEST; then October's.
    assert_eq!(
        starts(&s, "2025-09-01T00:00:00Z", 2),
        ["2025-09-13T00:30:00+00:00", "2025-10-18T00:30:00+00:00"]
    );
}

#[test]
fn a_configuration_without_a_zone_is_read_on_the_machines_clock() {
    let s = Schedule::of_configuration(&configuration(None, Vec::new()), Tz::America__New_York);
    assert_eq!(s.timezone(), Tz::America__New_York);
    assert_eq!(starts(&s, "2025-09-01T00:00:00Z", 1), ["2025-09-13T06:30:00+00:00"]);
}

#[test]
fn a_configurations_schedule_is_the_one_its_values_validate_into() {
    let christmas = Blackout { from: utc("2025-12-20T00:00:00Z"), to: utc("2026-01-02T00:00:00Z") };
    let overlapping = Blackout { from: utc("2025-12-30T00:00:00Z"), to: utc("2026-01-20T00:00:00Z") };
    let c = configuration(Some("Europe/Berlin"), vec![overlapping, christmas]);
    let validated = Schedule::new(ScheduleSpec {
        recurrence: second_tuesday_plus_four(),
        start_time: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        duration: TimeDelta::hours(3),
        timezone: Tz::Europe__Berlin,
        blackouts: vec![christmas, overlapping],
    })
    .unwrap();
    let s = Schedule::of_configuration(&c, Tz::UTC);
    assert_eq!(s, validated);
    assert_eq!(s.blackouts(), [Blackout { from: christmas.from, to: overlapping.to }]);
    assert_eq!(s.duration(), TimeDelta::hours(3));
    // January's window (the 17th) falls in the merged blackout.
    assert_eq!(starts(&s, "2025-12-14T00:00:00Z", 1), ["2026-02-14T01:30:00+00:00"]);
}
