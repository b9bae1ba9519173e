//! Maintenance configurations: parsed once from the wire form with every field error at once
//! (the paths and messages clients see), written back as the body the API shows and stores,
//! and loaded from that body through the same checks.

#![allow(clippy::unwrap_used)]

use chrono::{NaiveTime, TimeDelta};
use hotpatch_domain::payload::RebootSetting;
use hotpatch_domain::schedule::{
    check_duration, check_start_time, ConfigurationSpec, Frequency, InvalidConfiguration,
    MaintenanceConfiguration, MonthAnchor, RecurrenceRule,
};
use hotpatch_domain::{Classification, FieldError};
use serde_json::{json, Value};

/// A configuration as a client sends it (the API tests' own).
fn request() -> Value {
    json!({
        "name": "patch-saturday",
        "recurrence": {"frequency": "monthly", "nth_weekday": {"week": 2, "day": "tuesday"}, "offset_days": 4},
        "start_time": "02:30",
        "duration": "PT3H",
        "timezone": "Europe/Berlin",
        "scope": {"regions": ["westeurope"]}
    })
}

/// Every field set, as the API stores and shows it today (the serialized `ConfigurationSpec`).
fn stored_full() -> Value {
    json!({
        "name": "patch-saturday",
        "recurrence": {"frequency": "monthly", "interval": 1, "days_of_week": [], "day_of_month": null,
                       "nth_weekday": {"week": 2, "day": "tuesday"}, "offset_days": 4},
        "start_time": "02:30",
        "duration": "PT3H",
        "timezone": "Europe/Berlin",
        "reboot": "never",
        "classifications": ["critical", "security", "dotnet"],
        "kb_include": ["KB5034123"],
        "kb_exclude": ["KB5034124"],
        "blackouts": [{"from": "2025-12-20T00:00:00Z", "to": "2026-01-02T00:00:00Z"}],
        "scope": {"machine_ids": ["0190a5a0-0000-7000-8000-000000000001"], "labels": {"env": "prod"},
                  "regions": ["westeurope"]}
    })
}

/// `base` with the top-level fields of `changes` replaced.
fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn parse(body: Value) -> Result<MaintenanceConfiguration, Vec<FieldError>> {
    MaintenanceConfiguration::parse(serde_json::from_value::<ConfigurationSpec>(body).unwrap())
}

fn errors(body: Value) -> Vec<(String, String)> {
    parse(body).unwrap_err().into_iter().map(|e| (e.field, e.message)).collect()
}

fn fields(body: Value) -> Vec<String> {
    errors(body).into_iter().map(|(f, _)| f).collect()
}

// --- the typed value --------------------------------------------------------------------------

#[test]
fn a_valid_configuration_parses_into_typed_values() {
    let c = parse(stored_full()).unwrap();
    assert_eq!(c.name(), "patch-saturday");
    assert_eq!(c.start_time(), NaiveTime::from_hms_opt(2, 30, 0).unwrap());
    assert_eq!(c.duration().as_delta(), TimeDelta::hours(3));
    assert_eq!(c.timezone().map(|tz| tz.name()), Some("Europe/Berlin"));
    assert_eq!(c.reboot(), RebootSetting::Never);
    assert_eq!(
        c.classifications(),
        [Classification::Critical, Classification::Security, Classification::Dotnet]
    );
    assert_eq!(c.kb_include()[0].as_str(), "KB5034123");
    assert_eq!(c.kb_exclude()[0].as_str(), "KB5034124");
    assert_eq!(c.blackouts().len(), 1);
    assert_eq!(c.scope().labels["env"], "prod");
    assert_eq!(
        c.recurrence().rule(),
        RecurrenceRule::Monthly {
            interval: 1,
            anchor: MonthAnchor::Nth(2, chrono::Weekday::Tue),
            offset_days: 4
        }
    );
}

#[test]
fn absent_fields_take_todays_defaults() {
    let c = parse(json!({"name": "n", "recurrence": {"frequency": "daily"}, "start_time": "01:00",
                         "duration": "PT4H"}))
    .unwrap();
    assert_eq!(c.timezone(), None);
    assert_eq!(c.reboot(), RebootSetting::IfRequired);
    assert_eq!(c.classifications(), [Classification::Critical, Classification::Security]);
    assert!(c.kb_include().is_empty() && c.kb_exclude().is_empty() && c.blackouts().is_empty());
    assert_eq!(c.scope(), &Default::default());
    assert_eq!(c.recurrence().rule(), RecurrenceRule::Daily { interval: 1 });
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "name": "n",
            "recurrence": {"frequency": "daily", "interval": 1, "days_of_week": [], "day_of_month": null,
                           "nth_weekday": null, "offset_days": 0},
            "start_time": "01:00", "duration": "PT4H", "timezone": null, "reboot": "if_required",
            "classifications": ["critical", "security"], "kb_include": [], "kb_exclude": [], "blackouts": [],
            "scope": {"machine_ids": [], "labels": {}, "regions": []}
        })
    );
}

// --- the JSON body ----------------------------------------------------------------------------

#[test]
fn a_full_configuration_serializes_to_todays_body_and_loads_back_equal() {
    let c = parse(stored_full()).unwrap();
    let body = serde_json::to_value(&c).unwrap();
    assert_eq!(body, stored_full());
    let loaded: MaintenanceConfiguration = serde_json::from_value(body).unwrap();
    assert_eq!(loaded, c);
}

#[test]
fn a_request_is_stored_with_its_defaults_spelled_out_and_loads_back_equal() {
    let c = parse(request()).unwrap();
    let stored = serde_json::to_value(&c).unwrap();
    assert_eq!(stored["recurrence"]["interval"], 1);
    assert_eq!(stored["recurrence"]["day_of_month"], Value::Null);
    assert_eq!(stored["reboot"], "if_required");
    assert_eq!(stored["scope"], json!({"machine_ids": [], "labels": {}, "regions": ["westeurope"]}));
    assert_eq!(serde_json::from_value::<MaintenanceConfiguration>(stored).unwrap(), c);
}

#[test]
fn stored_bodies_of_todays_shape_load() {
    let weekly = json!({"name": "weekly", "recurrence": {"frequency": "weekly", "interval": 2,
        "days_of_week": ["saturday", "sunday"], "day_of_month": null, "nth_weekday": null, "offset_days": 0},
        "start_time": "22:00", "duration": "PT4H", "timezone": null, "reboot": "if_required",
        "classifications": ["critical", "security"], "kb_include": [], "kb_exclude": [], "blackouts": [],
        "scope": {"machine_ids": [], "labels": {}, "regions": ["westeurope"]}});
    let last_day = with(
        weekly.clone(),
        json!({"recurrence": {"frequency": "monthly", "interval": 3, "days_of_week": [], "day_of_month": -1,
               "nth_weekday": null, "offset_days": -2}}),
    );
    for body in [stored_full(), weekly, last_day] {
        let c: MaintenanceConfiguration = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), body);
    }
}

#[test]
fn a_stored_duration_in_another_spelling_loads_and_is_written_back_canonically() {
    for (stored, canonical) in
        [("PT90M", "PT1H30M"), ("P1D", "PT24H"), ("PT1800S", "PT30M"), ("PT6H0M", "PT6H")]
    {
        let c: MaintenanceConfiguration =
            serde_json::from_value(with(stored_full(), json!({"duration": stored}))).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap()["duration"], canonical, "{stored}");
    }
}

#[test]
fn weekdays_are_written_back_as_sent() {
    let body = with(
        stored_full(),
        json!({"recurrence": {"frequency": "weekly", "interval": 1, "days_of_week": ["sunday", "monday"],
               "day_of_month": null, "nth_weekday": null, "offset_days": 0}}),
    );
    let c: MaintenanceConfiguration = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&c).unwrap(), body);
    assert_eq!(c.recurrence().rule(), RecurrenceRule::Weekly { interval: 1, days: 0b100_0001 });
}

#[test]
fn a_bad_stored_body_fails_to_load_naming_every_bad_field() {
    let body = with(stored_full(), json!({"duration": "PT10M", "kb_include": ["KB1"]}));
    let e = serde_json::from_value::<MaintenanceConfiguration>(body).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kb_include[0]: must be KB and 6–8 digits, e.g. KB5034123; \
         duration: must be between 30 minutes (PT30M) and 24 hours (PT24H)"
    );
    // An optional configuration that does not load is an error, never "no configuration".
    let e = serde_json::from_value::<Option<MaintenanceConfiguration>>(with(
        stored_full(),
        json!({"start_time": "1:00"}),
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "start_time: must be a local time HH:MM, e.g. 01:00");
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let mut recurrence = stored_full()["recurrence"].clone();
    recurrence["hour"] = json!(3);
    let mut scope = stored_full()["scope"].clone();
    scope["zones"] = json!([]);
    for body in [
        with(stored_full(), json!({"owner": "me"})),
        with(stored_full(), json!({"recurrence": recurrence})),
        with(stored_full(), json!({"scope": scope})),
        with(
            stored_full(),
            json!({"blackouts": [{"from": "2025-12-20T00:00:00Z",
                                                  "to": "2026-01-02T00:00:00Z", "why": "x"}]}),
        ),
    ] {
        let e = serde_json::from_value::<MaintenanceConfiguration>(body).unwrap_err();
        assert!(e.to_string().starts_with("unknown field"), "{e}");
    }
}

#[test]
fn the_refusal_reads_as_the_apis_problem_detail() {
    let e = InvalidConfiguration(vec![FieldError::new("name", "a"), FieldError::new("duration", "b")]);
    assert_eq!(e.to_string(), "name: a; duration: b");
    let spec: ConfigurationSpec = serde_json::from_value(with(request(), json!({"name": ""}))).unwrap();
    assert_eq!(
        MaintenanceConfiguration::try_from(spec).unwrap_err(),
        InvalidConfiguration(vec![FieldError::new(
            "name",
            "must be 1–128 characters, without control characters"
        )])
    );
}

// --- field errors -----------------------------------------------------------------------------

#[test]
fn every_invalid_field_is_named_with_its_path_and_message() {
    let classifications = "must be one of critical, security, update_rollup, feature_pack, service_pack, \
                           definition, tools, updates, dotnet, driver, firmware";
    let name = "must be 1–128 characters, without control characters";
    let kb = "must be KB and 6–8 digits, e.g. KB5034123";
    let range = "must be between 30 minutes (PT30M) and 24 hours (PT24H)";
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"name": ""}), "name", name),
        (json!({"name": "   "}), "name", name),
        (json!({"name": "x".repeat(129)}), "name", name),
        (json!({"name": "a\nb"}), "name", name),
        (json!({"start_time": "25:00"}), "start_time", "must be a local time HH:MM, e.g. 01:00"),
        (json!({"start_time": "1:00"}), "start_time", "must be a local time HH:MM, e.g. 01:00"),
        (json!({"start_time": "01:00:00"}), "start_time", "must be a local time HH:MM, e.g. 01:00"),
        (json!({"duration": "2 hours"}), "duration", "must be an ISO 8601 duration such as PT4H or PT1H30M"),
        (json!({"duration": "PT10M"}), "duration", range),
        (json!({"duration": "PT25H"}), "duration", range),
        (
            json!({"timezone": "Mars/Olympus"}),
            "timezone",
            "'Mars/Olympus' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC), or null",
        ),
        (json!({"classifications": ["critical", "patches"]}), "classifications[1]", classifications),
        (json!({"kb_include": ["kb5034123"]}), "kb_include[0]", kb),
        (json!({"kb_exclude": ["KB5034123", "5034123"]}), "kb_exclude[1]", kb),
        (
            json!({"scope": {"regions": ["West Europe"]}}),
            "scope.regions[0]",
            "must be 1–64 lower-case letters, digits or dashes",
        ),
        (json!({"scope": {"labels": {"bad:key": "x"}}}), "scope.labels.bad:key", "not a valid label key and value"),
        (
            json!({"blackouts": [{"from": "2025-12-26T00:00:00Z", "to": "2025-12-26T00:00:00Z"}]}),
            "blackouts[0].to",
            "must be after `from`",
        ),
    ];
    for (change, field, message) in cases {
        assert_eq!(
            errors(with(request(), change.clone())),
            [(field.to_owned(), message.to_owned())],
            "{change}"
        );
    }
    let blackout = json!({"from": "2025-12-20T00:00:00Z", "to": "2025-12-21T00:00:00Z"});
    assert_eq!(
        errors(with(request(), json!({"blackouts": vec![blackout; 101]}))),
        [("blackouts".to_owned(), "at most 100 blackouts".to_owned())]
    );
}

#[test]
fn every_invalid_recurrence_field_is_named_with_its_path_and_message() {
    let monthly_only = "only for monthly recurrences";
    let cases = [
        (json!({"frequency": "daily", "interval": 0}), "recurrence.interval", "must be between 1 and 366"),
        (json!({"frequency": "daily", "interval": 367}), "recurrence.interval", "must be between 1 and 366"),
        (
            json!({"frequency": "weekly", "interval": 53, "days_of_week": ["monday"]}),
            "recurrence.interval",
            "must be between 1 and 52",
        ),
        (
            json!({"frequency": "monthly", "interval": 13, "day_of_month": 1}),
            "recurrence.interval",
            "must be between 1 and 12",
        ),
        (
            json!({"frequency": "weekly"}),
            "recurrence.days_of_week",
            "a weekly recurrence needs at least one day",
        ),
        (
            json!({"frequency": "daily", "days_of_week": ["monday"]}),
            "recurrence.days_of_week",
            "only for weekly recurrences",
        ),
        (json!({"frequency": "daily", "day_of_month": 1}), "recurrence.day_of_month", monthly_only),
        (
            json!({"frequency": "weekly", "days_of_week": ["friday"], "nth_weekday": {"week": 1, "day": "friday"}}),
            "recurrence.nth_weekday",
            monthly_only,
        ),
        (
            json!({"frequency": "monthly", "day_of_month": 1, "nth_weekday": {"week": 1, "day": "friday"}}),
            "recurrence.nth_weekday",
            "give either day_of_month or nth_weekday, not both",
        ),
        (
            json!({"frequency": "monthly"}),
            "recurrence.day_of_month",
            "a monthly recurrence needs day_of_month or nth_weekday",
        ),
        (
            json!({"frequency": "monthly", "day_of_month": 32}),
            "recurrence.day_of_month",
            "must be 1..31, or -1 for the last day",
        ),
        (
            json!({"frequency": "monthly", "day_of_month": 0}),
            "recurrence.day_of_month",
            "must be 1..31, or -1 for the last day",
        ),
        (
            json!({"frequency": "monthly", "day_of_month": -2}),
            "recurrence.day_of_month",
            "must be 1..31, or -1 for the last day",
        ),
        (
            json!({"frequency": "monthly", "nth_weekday": {"week": 5, "day": "monday"}}),
            "recurrence.nth_weekday.week",
            "must be 1..4, or -1 for the last",
        ),
        (
            json!({"frequency": "monthly", "day_of_month": 1, "offset_days": 31}),
            "recurrence.offset_days",
            "must be between -30 and 30",
        ),
        (
            json!({"frequency": "monthly", "day_of_month": 1, "offset_days": -31}),
            "recurrence.offset_days",
            "must be between -30 and 30",
        ),
        (json!({"frequency": "daily", "offset_days": 2}), "recurrence.offset_days", monthly_only),
    ];
    for (recurrence, field, message) in cases {
        let body = with(request(), json!({ "recurrence": recurrence }));
        assert_eq!(errors(body), [(field.to_owned(), message.to_owned())], "{recurrence}");
    }
}

#[test]
fn one_answer_names_every_bad_field_in_todays_order() {
    let body = json!({
        "name": "",
        "recurrence": {"frequency": "monthly", "interval": 0, "day_of_month": 32, "offset_days": 31},
        "start_time": "25:00",
        "duration": "PT10M",
        "timezone": "Mars/Olympus",
        "classifications": ["x"],
        "kb_include": ["y"],
        "kb_exclude": ["5034123"],
        "blackouts": [{"from": "2025-12-26T00:00:00Z", "to": "2025-12-20T00:00:00Z"}],
        "scope": {"regions": ["A"], "labels": {"bad:key": "x"}}
    });
    assert_eq!(
        fields(body),
        [
            "name",
            "start_time",
            "timezone",
            "classifications[0]",
            "kb_include[0]",
            "kb_exclude[0]",
            "scope.regions[0]",
            "scope.labels.bad:key",
            "recurrence.interval",
            "recurrence.day_of_month",
            "recurrence.offset_days",
            "duration",
            "blackouts[0].to",
        ]
    );
}

#[test]
fn a_start_time_or_duration_that_does_not_parse_is_reported_once() {
    let body = with(
        request(),
        json!({"start_time": "noon", "duration": "soon", "recurrence": {"frequency": "weekly"}}),
    );
    assert_eq!(
        errors(body),
        [
            ("start_time".to_owned(), "must be a local time HH:MM, e.g. 01:00".to_owned()),
            ("duration".to_owned(), "must be an ISO 8601 duration such as PT4H or PT1H30M".to_owned()),
            ("recurrence.days_of_week".to_owned(), "a weekly recurrence needs at least one day".to_owned()),
        ]
    );
}

#[test]
fn a_wire_error_in_the_recurrence_is_a_serde_error_at_its_path() {
    let e = serde_json::from_value::<ConfigurationSpec>(with(
        request(),
        json!({"recurrence": {"frequency": "hourly"}}),
    ))
    .unwrap_err();
    assert!(e.to_string().starts_with("unknown variant `hourly`"), "{e}");
    let e = serde_json::from_value::<ConfigurationSpec>(with(request(), json!({"reboot": "sometimes"})))
        .unwrap_err();
    assert!(e.to_string().contains("expected one of `if_required`, `never`, `always`"), "{e}");
}

#[test]
fn the_longest_and_shortest_windows_and_names_are_valid() {
    for change in [
        json!({"duration": "PT30M"}),
        json!({"duration": "PT24H"}),
        json!({"name": "x".repeat(128)}),
        json!({"start_time": "23:59"}),
        json!({"timezone": null}),
        json!({"recurrence": {"frequency": "monthly", "nth_weekday": {"week": -1, "day": "friday"}, "offset_days": -30}}),
    ] {
        assert!(parse(with(request(), change.clone())).is_ok(), "{change}");
    }
}

#[test]
fn the_recurrence_limits_are_a_year_of_each_frequency() {
    assert_eq!(Frequency::Daily.max_interval(), 366);
    assert_eq!(Frequency::Weekly.max_interval(), 52);
    assert_eq!(Frequency::Monthly.max_interval(), 12);
}

#[test]
fn a_window_starts_on_whole_minutes_and_lasts_whole_seconds() {
    let start = |h, m, s| check_start_time(NaiveTime::from_hms_opt(h, m, s).unwrap());
    assert!(start(1, 0, 0).is_ok());
    assert_eq!(start(1, 0, 30).unwrap_err(), FieldError::new("start_time", "must be whole minutes (HH:MM)"));
    assert!(check_duration(TimeDelta::minutes(90)).is_ok());
    assert_eq!(
        check_duration(TimeDelta::minutes(90) + TimeDelta::nanoseconds(1)).unwrap_err(),
        FieldError::new("duration", "must be whole seconds")
    );
}
