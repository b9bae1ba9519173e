//! Calendar feeds (issue 20): a read-only URL of a machine's or a configuration's windows that a
//! calendar app reads without a token, serving what the bearer `.ics` endpoint serves, until it
//! is revoked.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::http::Method;
use common::{azure_2022, TestApp, ADMIN};
use serde_json::json;

/// The calendar without its `DTSTAMP` lines (the instant it was served).
fn without_stamps(ics: &str) -> String {
    ics.split("\r\n").filter(|l| !l.starts_with("DTSTAMP:")).collect::<Vec<_>>().join("\r\n")
}

/// GET without any Authorization header.
async fn anonymous(app: &TestApp, path: &str) -> common::Reply {
    app.call(Method::GET, path, None, None).await
}

#[tokio::test]
async fn a_machines_feed_serves_its_calendar_without_a_token_until_it_is_revoked() {
    let app = TestApp::new().await;
    let machine = app.machine(azure_2022("web-1")).await["id"].as_str().unwrap().to_owned();
    let reader = app.token("reader").await;

    let created = app.post("/v1/calendar-feeds", &reader, json!({"machine_id": machine})).await;
    let feed = created.ok(201).clone();
    let url = feed["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/v1/feeds/") && url.ends_with(".ics"), "{url}");
    assert_eq!(feed["machine_id"], machine.as_str());
    assert_eq!(created.headers["location"], format!("/v1/calendar-feeds/{}", feed["id"].as_str().unwrap()));

    let query = "?from=2025-03-29T12:00:00Z&count=3";
    let served = anonymous(&app, &format!("{url}{query}")).await;
    assert_eq!(served.status.as_u16(), 200, "{}", served.body);
    assert!(served.headers["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let ics = served.body.as_str().unwrap();
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 3);
    let bearer = app.get(&format!("/v1/machines/{machine}/calendar.ics{query}"), ADMIN).await;
    assert_eq!(without_stamps(ics), without_stamps(bearer.body.as_str().unwrap()), "the same calendar");

    // Listed for its maker without its URL; revoked, the URL is gone.
    let mine = app.get("/v1/calendar-feeds", &reader).await.ok(200).clone();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["id"], feed["id"]);
    assert!(mine["items"][0].get("url").is_none(), "the URL is shown once");
    let id = feed["id"].as_str().unwrap();
    app.delete(&format!("/v1/calendar-feeds/{id}"), &reader).await.ok(204);
    anonymous(&app, &url).await.problem(404, "not_found");
    app.delete(&format!("/v1/calendar-feeds/{id}"), &reader).await.problem(404, "not_found");
}

#[tokio::test]
async fn a_configurations_feed_serves_the_configurations_calendar() {
    let app = TestApp::new().await;
    let config = json!({"name": "saturdays", "recurrence": {"frequency": "weekly", "days_of_week": ["saturday"]},
                        "start_time": "02:00", "duration": "PT3H", "timezone": "Europe/Berlin"});
    let id = app.post("/v1/maintenance-configurations", ADMIN, config).await.ok(201)["id"].clone();
    let feed = app.post("/v1/calendar-feeds", ADMIN, json!({"maintenance_configuration_id": id})).await;
    let url = feed.ok(201)["url"].as_str().unwrap().to_owned();
    let served = anonymous(&app, &format!("{url}?from=2025-09-01T00:00:00Z&count=2")).await;
    let ics = served.ok(200).as_str().unwrap();
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 2);
    assert!(ics.contains("DTSTART:20250906T000000Z"), "Saturday 6 September, 02:00 CEST: {ics}");
    assert!(ics.contains("SUMMARY:Maintenance window (saturdays)"));
    // Deleting the configuration takes its feeds along.
    let id = id.as_str().unwrap();
    app.delete(&format!("/v1/maintenance-configurations/{id}"), ADMIN).await.ok(204);
    anonymous(&app, &url).await.problem(404, "not_found");
}

#[tokio::test]
async fn a_feed_needs_exactly_one_existing_machine_or_configuration() {
    let app = TestApp::new().await;
    let unknown = "0190a5a0-0000-7000-8000-000000000000";
    let r = app.post("/v1/calendar-feeds", ADMIN, json!({"machine_id": unknown})).await;
    assert!(r.problem(422, "validation_failed")["detail"].as_str().unwrap().contains(unknown));
    let r = app.post("/v1/calendar-feeds", ADMIN, json!({"maintenance_configuration_id": unknown})).await;
    r.problem(422, "validation_failed");
    app.post("/v1/calendar-feeds", ADMIN, json!({})).await.problem(422, "validation_failed");
    let both = json!({"machine_id": unknown, "maintenance_configuration_id": unknown});
    app.post("/v1/calendar-feeds", ADMIN, both).await.problem(422, "validation_failed");
    // Made-up secrets and malformed names are 404, whatever their shape.
    for path in ["/v1/feeds/x.ics", &format!("/v1/feeds/{}.ics", "0".repeat(64)), "/v1/feeds/abc"] {
        anonymous(&app, path).await.problem(404, "not_found");
    }
    app.call(Method::GET, "/v1/calendar-feeds", None, None).await.problem(401, "unauthorized");
}

#[tokio::test]
async fn each_caller_sees_and_revokes_their_own_feeds_and_an_admin_every_one() {
    let app = TestApp::new().await;
    let machine = app.machine(azure_2022("web-1")).await["id"].clone();
    let (alice, bob) = (app.token("reader").await, app.token("operator").await);
    let feed = app.post("/v1/calendar-feeds", &alice, json!({"machine_id": machine})).await.ok(201).clone();
    let id = feed["id"].as_str().unwrap();
    app.post("/v1/calendar-feeds", &bob, json!({"machine_id": machine})).await.ok(201);

    assert_eq!(app.get("/v1/calendar-feeds", &bob).await.ok(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/v1/calendar-feeds", ADMIN).await.ok(200)["items"].as_array().unwrap().len(), 2);
    app.delete(&format!("/v1/calendar-feeds/{id}"), &bob).await.problem(404, "not_found");
    anonymous(&app, feed["url"].as_str().unwrap()).await.ok(200);
    app.delete(&format!("/v1/calendar-feeds/{id}"), ADMIN).await.ok(204);
    anonymous(&app, feed["url"].as_str().unwrap()).await.problem(404, "not_found");
}

#[tokio::test]
async fn revoking_the_token_that_made_a_feed_revokes_the_feed() {
    let app = TestApp::new().await;
    let machine = app.machine(azure_2022("web-1")).await["id"].clone();
    let made =
        app.post("/v1/tokens", ADMIN, json!({"name": "calendar", "role": "reader"})).await.ok(201).clone();
    let token = made["token"].as_str().unwrap();
    let feed = app.post("/v1/calendar-feeds", token, json!({"machine_id": machine})).await.ok(201).clone();
    let url = feed["url"].as_str().unwrap();
    anonymous(&app, url).await.ok(200);
    app.delete(&format!("/v1/tokens/{}", made["id"].as_str().unwrap()), ADMIN).await.ok(204);
    anonymous(&app, url).await.problem(404, "not_found");
}
