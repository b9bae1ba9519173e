//! Maintenance configurations and machine windows against real PostgreSQL: CRUD, scope
//! precedence, validation problems with field paths, DST warnings, the windows endpoint.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{azure_2022, with, TestApp, ADMIN};
use serde_json::{json, Value};

fn config(name: &str) -> Value {
    json!({
        "name": name,
        "recurrence": {"frequency": "monthly", "nth_weekday": {"week": 2, "day": "tuesday"}, "offset_days": 4},
        "start_time": "02:30",
        "duration": "PT3H",
        "timezone": "Europe/Berlin",
        "scope": {"regions": ["westeurope"]}
    })
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_configuration_is_created_read_listed_patched_and_deleted() {
    let app = TestApp::new().await;
    let r = app.post("/v1/maintenance-configurations", ADMIN, config("patch-saturday")).await;
    let created = r.ok(201).clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["location"], format!("/v1/maintenance-configurations/{id}"));
    assert_eq!(created["reboot"], "if_required");
    assert_eq!(created["classifications"], json!(["critical", "security"]));
    assert!(created["warnings"].is_array());

    let got = app.get(&format!("/v1/maintenance-configurations/{id}"), ADMIN).await;
    assert_eq!(got.ok(200)["recurrence"]["offset_days"], 4);
    assert!(got.body.get("warnings").is_none());
    let list = app.get("/v1/maintenance-configurations", ADMIN).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);

    let patched = app
        .patch(&format!("/v1/maintenance-configurations/{id}"), ADMIN, json!({"start_time": "03:00"}))
        .await;
    assert_eq!(patched.ok(200)["start_time"], "03:00");
    assert_eq!(patched.body["name"], "patch-saturday");

    app.post("/v1/maintenance-configurations", ADMIN, config("patch-saturday"))
        .await
        .problem(409, "conflict");

    assert_eq!(app.delete(&format!("/v1/maintenance-configurations/{id}"), ADMIN).await.status.as_u16(), 204);
    app.get(&format!("/v1/maintenance-configurations/{id}"), ADMIN).await.problem(404, "not_found");
}

#[tokio::test]
async fn invalid_configurations_are_422_problems_naming_every_field() {
    let app = TestApp::new().await;
    let body = with(
        config("bad"),
        json!({
            "recurrence": {"frequency": "monthly", "interval": 0, "day_of_month": 32, "offset_days": 31},
            "start_time": "25:00",
            "duration": "PT10M",
            "timezone": "Mars/Olympus",
            "kb_exclude": ["5034123"],
            "blackouts": [{"from": "2025-12-26T00:00:00Z", "to": "2025-12-20T00:00:00Z"}]
        }),
    );
    let r = app.post("/v1/maintenance-configurations", ADMIN, body).await;
    let names = fields(r.problem(422, "validation_failed"));
    for f in ["start_time", "duration", "timezone", "kb_exclude[0]"] {
        assert!(names.iter().any(|x| x == f), "{f} missing from {names:?}");
    }
    // The schedule's own checks run once the times parse.
    let body = with(
        config("bad"),
        json!({
            "recurrence": {"frequency": "monthly", "interval": 0, "day_of_month": 32, "offset_days": 31},
            "duration": "PT25H",
            "blackouts": [{"from": "2025-12-26T00:00:00Z", "to": "2025-12-20T00:00:00Z"}]
        }),
    );
    let r = app.post("/v1/maintenance-configurations", ADMIN, body).await;
    let names = fields(r.problem(422, "validation_failed"));
    for f in [
        "recurrence.interval",
        "recurrence.day_of_month",
        "recurrence.offset_days",
        "duration",
        "blackouts[0].to",
    ] {
        assert!(names.iter().any(|x| x == f), "{f} missing from {names:?}");
    }
    let r = app
        .post(
            "/v1/maintenance-configurations",
            ADMIN,
            with(config("bad"), json!({"recurrence": {"frequency": "hourly"}})),
        )
        .await;
    assert_eq!(fields(r.problem(422, "validation_failed")), ["recurrence.frequency"]);
}

#[tokio::test]
async fn readers_cannot_write_configurations() {
    let app = TestApp::new().await;
    let reader = app.token("reader").await;
    app.post("/v1/maintenance-configurations", &reader, config("x")).await.problem(403, "forbidden");
    app.get("/v1/maintenance-configurations", &reader).await.ok(200);
}

#[tokio::test]
async fn a_configuration_with_a_zone_warns_about_dst_changes_in_the_next_year() {
    let app = TestApp::new().await;
    let daily = with(
        config("daily-0230"),
        json!({"recurrence": {"frequency": "daily"}, "start_time": "02:30", "duration": "PT1H"}),
    );
    let r = app.post("/v1/maintenance-configurations", ADMIN, daily).await;
    let warnings = r.ok(201)["warnings"].as_array().unwrap().clone();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("does not exist")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("occurs twice")), "{warnings:?}");
}

#[tokio::test]
async fn a_machine_outside_every_configuration_gets_the_default_off_peak_window_in_its_zone() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("web-1")).await;
    let r = app
        .get(
            &format!("/v1/machines/{}/windows?from=2025-07-01T12:00:00Z&count=2", m["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    let items = r.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["source"], "default_off_peak");
    assert_eq!(items[0]["start"], "2025-07-01T23:00:00Z");
    assert_eq!(items[0]["end"], "2025-07-02T03:00:00Z");
    assert_eq!(items[0]["start_local"], "2025-07-02T01:00:00+02:00");
    assert_eq!(items[0]["timezone"], "Europe/Berlin");
    assert!(items[0]["maintenance_configuration_id"].is_null());
}

#[tokio::test]
async fn scope_precedence_is_machine_id_then_label_then_region_then_the_oldest() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("web-1")).await;
    let id = m["id"].as_str().unwrap();
    let path = format!("/v1/machines/{id}/windows?from=2025-03-29T12:00:00Z&count=1");
    let source = |r: &Value| {
        (r["items"][0]["maintenance_configuration_id"].clone(), r["items"][0]["matched_by"].clone())
    };

    let region_old =
        app.post("/v1/maintenance-configurations", ADMIN, config("region-old")).await.ok(201).clone();
    app.post("/v1/maintenance-configurations", ADMIN, config("region-new")).await.ok(201);
    assert_eq!(source(app.get(&path, ADMIN).await.ok(200)), (region_old["id"].clone(), json!("region")));

    let label = with(config("label"), json!({"scope": {"labels": {"env": "prod"}}, "timezone": null}));
    let label = app.post("/v1/maintenance-configurations", ADMIN, label).await.ok(201).clone();
    let r = app.get(&path, ADMIN).await;
    assert_eq!(source(r.ok(200)), (label["id"].clone(), json!("label")));
    // No zone of its own: the machine's. Second Tuesday of April 2025 + 4 days, 02:30 Berlin.
    assert_eq!(r.body["items"][0]["start_local"], "2025-04-12T02:30:00+02:00");

    // A label the machine lacks does not match.
    let other = with(config("other-label"), json!({"scope": {"labels": {"env": "prod", "team": "db"}}}));
    app.post("/v1/maintenance-configurations", ADMIN, other).await.ok(201);
    assert_eq!(source(app.get(&path, ADMIN).await.ok(200)).0, label["id"]);

    let named = with(
        config("named"),
        json!({"scope": {"machine_ids": [id]}, "recurrence": {"frequency": "daily"}, "start_time": "22:00", "duration": "PT6H"}),
    );
    let named = app.post("/v1/maintenance-configurations", ADMIN, named).await.ok(201).clone();
    let r = app.get(&path, ADMIN).await;
    assert_eq!(source(r.ok(200)), (named["id"].clone(), json!("machine_id")));
    assert_eq!(r.body["items"][0]["source"], "maintenance_configuration");
    assert_eq!(r.body["items"][0]["start_local"], "2025-03-29T22:00:00+01:00");
    // 22:00 + 6 h across the spring-forward night: ends 05:00 on the clock, and says so.
    assert_eq!(r.body["items"][0]["end_local"], "2025-03-30T05:00:00+02:00");
    assert_eq!(r.body["items"][0]["notes"].as_array().unwrap().len(), 1);

    // A machine registered later with the label is in scope at once.
    let m2 = app.machine(with(azure_2022("web-2"), json!({"region": "northeurope"}))).await;
    let r = app
        .get(
            &format!("/v1/machines/{}/windows?from=2025-03-29T12:00:00Z&count=1", m2["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    assert_eq!(source(r.ok(200)), (label["id"].clone(), json!("label")));
}

#[tokio::test]
async fn the_windows_endpoint_checks_its_parameters() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("web-1")).await;
    let id = m["id"].as_str().unwrap();
    app.get(&format!("/v1/machines/{id}/windows?count=101"), ADMIN).await.problem(400, "validation_failed");
    app.get(&format!("/v1/machines/{id}/windows?count=0"), ADMIN).await.problem(400, "validation_failed");
    app.get(&format!("/v1/machines/{id}/windows?from=yesterday"), ADMIN)
        .await
        .problem(400, "validation_failed");
    app.get(&format!("/v1/machines/{id}/windows?size=3"), ADMIN).await.problem(400, "validation_failed");
    let r = app.get(&format!("/v1/machines/{id}/windows"), ADMIN).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 5);
    let r = app.get(&format!("/v1/machines/{id}/windows?count=100"), ADMIN).await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 100);
    app.get("/v1/machines/0190a5a0-0000-7000-8000-000000000000/windows", ADMIN)
        .await
        .problem(404, "not_found");
}

/// Parses an RFC 5545 answer; returns every event's properties as (name, value) pairs.
fn events(ics: &str) -> Vec<Vec<(String, String)>> {
    assert!(ics.ends_with("\r\n") && !ics.replace("\r\n", "").contains('\n'), "CRLF line ends");
    assert!(ics.split("\r\n").all(|l| l.len() <= 75), "lines folded at 75 octets");
    let mut parser = ical::IcalParser::new(ics.as_bytes());
    let calendar = parser.next().unwrap().unwrap();
    assert!(parser.next().is_none());
    let prop = |ps: &[ical::property::Property], name: &str| {
        ps.iter().find(|p| p.name == name).and_then(|p| p.value.clone())
    };
    assert_eq!(prop(&calendar.properties, "VERSION").as_deref(), Some("2.0"));
    assert!(prop(&calendar.properties, "PRODID").is_some());
    calendar
        .events
        .iter()
        .map(|e| e.properties.iter().map(|p| (p.name.clone(), p.value.clone().unwrap_or_default())).collect())
        .collect()
}

fn value<'a>(event: &'a [(String, String)], name: &str) -> &'a str {
    &event.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} missing from {event:?}")).1
}

#[tokio::test]
async fn a_machines_calendar_is_valid_icalendar_with_the_same_windows() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("web-1")).await;
    let id = m["id"].as_str().unwrap();
    let daily = with(
        config("daily-0230"),
        json!({"recurrence": {"frequency": "daily"}, "start_time": "02:30", "duration": "PT1H",
               "scope": {"machine_ids": [id]}}),
    );
    app.post("/v1/maintenance-configurations", ADMIN, daily).await.ok(201);
    let query = "from=2025-03-29T12:00:00Z&count=3";
    let windows = app.get(&format!("/v1/machines/{id}/windows?{query}"), ADMIN).await.ok(200).clone();
    let r = app.get(&format!("/v1/machines/{id}/calendar.ics?{query}"), ADMIN).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let events = events(r.body.as_str().unwrap());
    assert_eq!(events.len(), 3);
    // The spring-forward night: 02:30 does not exist, the window starts at 03:00 CEST = 01:00Z.
    assert_eq!(value(&events[0], "DTSTART"), "20250330T010000Z");
    assert_eq!(value(&events[0], "DTEND"), "20250330T020000Z");
    assert!(value(&events[0], "DESCRIPTION").contains("does not exist"));
    for (event, window) in events.iter().zip(windows["items"].as_array().unwrap()) {
        let start = window["start"].as_str().unwrap().replace(['-', ':'], "");
        assert_eq!(value(event, "DTSTART"), start);
    }
    let uids: std::collections::BTreeSet<&str> = events.iter().map(|e| value(e, "UID")).collect();
    assert_eq!(uids.len(), 3);
}

#[tokio::test]
async fn a_configurations_calendar_is_valid_icalendar() {
    let app = TestApp::new().await;
    let c = app
        .post("/v1/maintenance-configurations", ADMIN, config("prod, saturday; after patch tuesday"))
        .await;
    let id = c.ok(201)["id"].as_str().unwrap().to_owned();
    let r = app
        .get(
            &format!("/v1/maintenance-configurations/{id}/calendar.ics?from=2025-09-01T00:00:00Z&count=2"),
            ADMIN,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    let events = events(r.body.as_str().unwrap());
    assert_eq!(events.len(), 2);
    // Second Tuesday of September 2025 + 4 days, 02:30 Berlin (CEST).
    assert_eq!(value(&events[0], "DTSTART"), "20250913T003000Z");
    assert_eq!(value(&events[1], "DTSTART"), "20251018T003000Z");
    assert!(value(&events[0], "SUMMARY").contains("prod\\, saturday\\; after patch tuesday"));
    app.get("/v1/maintenance-configurations/0190a5a0-0000-7000-8000-000000000000/calendar.ics", ADMIN)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn a_configuration_without_a_zone_warns_in_the_zones_of_the_machines_in_scope() {
    let app = TestApp::new().await;
    app.machine(azure_2022("web-1")).await;
    app.machine(with(azure_2022("web-2"), json!({"timezone": "America/New_York"}))).await;
    app.machine(with(azure_2022("web-3"), json!({"timezone": "Asia/Kolkata"}))).await;
    let daily = with(
        config("daily-0230"),
        json!({"recurrence": {"frequency": "daily"}, "start_time": "02:30", "duration": "PT1H",
               "timezone": null, "scope": {"labels": {"env": "prod"}}}),
    );
    let r = app.post("/v1/maintenance-configurations", ADMIN, daily).await;
    let warnings: Vec<String> =
        r.ok(201)["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect();
    assert!(warnings.iter().any(|w| w.starts_with("Europe/Berlin: ")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("America/New_York: ")), "{warnings:?}");
    assert!(!warnings.iter().any(|w| w.starts_with("Asia/Kolkata")), "{warnings:?}");
}

#[tokio::test]
async fn a_configurations_windows_are_listed_as_its_calendar_has_them() {
    let app = TestApp::new().await;
    let id = app.post("/v1/maintenance-configurations", ADMIN, config("prod")).await.ok(201)["id"].clone();
    let id = id.as_str().unwrap();
    let w = app
        .get(&format!("/v1/maintenance-configurations/{id}/windows?from=2025-09-01T00:00:00Z&count=2"), ADMIN)
        .await;
    let items = w.ok(200)["items"].as_array().unwrap().clone();
    let starts: Vec<&str> = items.iter().map(|w| w["start"].as_str().unwrap()).collect();
    // Second Tuesday + 4 days, 02:30 Berlin: the same as a_configurations_calendar_is_valid_icalendar.
    assert_eq!(starts, ["2025-09-13T00:30:00Z", "2025-10-18T00:30:00Z"]);
    assert_eq!(
        (items[0]["source"].as_str(), items[0]["maintenance_configuration_id"].as_str()),
        (Some("maintenance_configuration"), Some(id))
    );
    let missing = "/v1/maintenance-configurations/0190a5a0-0000-7000-8000-000000000000/windows";
    app.get(missing, ADMIN).await.problem(404, "not_found");
}
