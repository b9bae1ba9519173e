//! Server settings reach the rules: the default off-peak window and the baseline months,
//! and patch status shows the next window.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chrono::{NaiveTime, TimeDelta};
use common::{azure_2022, TestApp, ADMIN};
use hotpatch_api::{router, AppState, Settings};
use hotpatch_scheduler::cycle::CalendarRule;

async fn app_with(settings: Settings) -> TestApp {
    let app = TestApp::new().await;
    TestApp { router: router(AppState::with_settings(app.pool.clone(), settings)), ..app }
}

#[tokio::test]
async fn the_default_off_peak_window_follows_the_server_setting_in_the_machines_own_zone() {
    let app = app_with(Settings {
        off_peak_start: NaiveTime::from_hms_opt(22, 30, 0).unwrap(),
        off_peak_duration: TimeDelta::minutes(90),
        ..Settings::default()
    })
    .await;
    let m = app.machine(azure_2022("night-owl")).await;
    let id = m["id"].as_str().unwrap();
    let w = app.get(&format!("/v1/machines/{id}/windows?from=2025-07-01T12:00:00Z&count=1"), ADMIN).await;
    let w = &w.ok(200)["items"][0];
    assert_eq!(w["start_local"], "2025-07-01T22:30:00+02:00");
    assert_eq!(w["end_local"], "2025-07-02T00:00:00+02:00");
    assert_eq!(w["source"], "default_off_peak");
}

#[tokio::test]
async fn patch_status_shows_the_next_window() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("web-1")).await;
    let id = m["id"].as_str().unwrap();
    let status = app.get(&format!("/v1/machines/{id}/patch-status?at=2025-07-01T12:00:00Z"), ADMIN).await;
    let next = &status.ok(200)["next_window"];
    assert_eq!(next["start"], "2025-07-01T23:00:00Z", "01:00 Europe/Berlin (CEST) the next night: {next}");
    assert_eq!(next["end"], "2025-07-02T03:00:00Z");
}

#[tokio::test]
async fn the_calendar_follows_the_baseline_month_setting() {
    let app =
        app_with(Settings { calendar: CalendarRule::starting(2).unwrap(), ..Settings::default() }).await;
    let cal = app.get("/v1/calendar?os=windows_server_2022&year=2026", ADMIN).await;
    let months = cal.ok(200)["months"].as_array().unwrap().clone();
    let baselines: Vec<&str> =
        months.iter().filter(|m| m["kind"] == "baseline").map(|m| m["month"].as_str().unwrap()).collect();
    assert_eq!(baselines, ["2026-02", "2026-05", "2026-08", "2026-11"]);
}
