//! Automatic rollouts against a real database: only "nothing to roll out" starts nothing; a
//! stored maintenance configuration that no longer loads fails the publication.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use hotpatch_domain::ReleaseSpec;
use hotpatch_store::testing::{fresh_db, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::catalog::publish_release;
use crate::{App, AppError, Clock, Settings};

/// A day after January 2025's patch Tuesday: January's baseline is current.
fn now() -> DateTime<Utc> {
    "2025-01-15T12:00:00Z".parse().unwrap()
}

/// Services on a fresh database, on a manual clock at [`now`], automatic rollouts on.
async fn app() -> (TestDb, App) {
    let db = fresh_db().await;
    let app = App::new(db.pool.clone(), Settings::default()).with_clock(Clock::manual(now()));
    (db, app)
}

/// January 2025's Windows Server 2022 baseline, as published.
fn january() -> ReleaseSpec {
    serde_json::from_value(json!({
        "os": "windows_server_2022", "kind": "baseline", "planned": true, "month": "2025-01",
        "kb": "KB5000001", "build": "20348.2227", "released_at": "2025-01-14T18:00:00Z",
    }))
    .unwrap()
}

/// An eligible, hotpatch-enabled Azure machine in westeurope patched by the platform.
async fn machine(app: &App, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into machine (id, name, platform, os, region, timezone, hotpatch_enabled,
                              patch_orchestration, eligible, eligibility, hotpatch_status)
         values ($1, $2, 'azure_vm', 'windows_server_2022', 'westeurope', 'Europe/Berlin', true,
                 'automatic_by_platform', true, '{}'::jsonb, 'enabled')",
    )
    .bind(id)
    .bind(name)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

/// A maintenance configuration naming `machine`, stored with `body` as it is.
async fn configuration(app: &App, machine: Uuid, body: Value) {
    sqlx::query(
        "insert into maintenance_configuration (id, name, body, scope_machine_ids)
         values ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(body["name"].as_str().unwrap())
    .bind(&body)
    .bind(vec![machine])
    .execute(&app.pool)
    .await
    .unwrap();
}

/// A valid configuration: Saturdays at 02:00 Berlin time for three hours.
fn saturdays(name: &str) -> Value {
    json!({
        "name": name,
        "recurrence": {"frequency": "weekly", "days_of_week": ["saturday"]},
        "start_time": "02:00",
        "duration": "PT3H",
        "timezone": "Europe/Berlin",
    })
}

async fn rollout_rows(app: &App) -> i64 {
    sqlx::query_scalar("select count(*) from rollout").fetch_one(&app.pool).await.unwrap()
}

async fn release_rows(app: &App) -> i64 {
    sqlx::query_scalar("select count(*) from release").fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_stored_configuration_that_no_longer_loads_fails_the_publication_instead_of_skipping_the_rollout() {
    let (_db, app) = app().await;
    let m = machine(&app, "web-1").await;
    // Written by hand (a version with other rules, or an edit outside the service).
    let mut broken = saturdays("broken");
    broken["start_time"] = json!("25:00");
    configuration(&app, m, broken).await;

    let err = publish_release(&app, january()).await.unwrap_err();
    let AppError::Internal(cause) = &err else { panic!("an internal error, not {err:?}") };
    assert!(cause.contains("stored maintenance configuration"), "{cause}");
    assert!(cause.contains("start_time"), "names the bad field: {cause}");
    assert_eq!(release_rows(&app).await, 0, "not published without its rollout");
    assert_eq!(rollout_rows(&app).await, 0);
}

#[tokio::test]
async fn a_stored_configuration_plans_its_machines_in_its_own_windows() {
    let (_db, app) = app().await;
    let m = machine(&app, "web-1").await;
    configuration(&app, m, saturdays("saturdays")).await;

    let published = publish_release(&app, january()).await.unwrap();
    let rollout = published.automatic_rollout_id.expect("an automatic rollout");
    let (start,): (DateTime<Utc>,) =
        sqlx::query_as("select window_start from rollout_machine where rollout_id = $1 and machine_id = $2")
            .bind(rollout)
            .bind(m)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    // Saturday 18 January 2025, 02:00 in Berlin (UTC+1).
    assert_eq!(start, "2025-01-18T01:00:00Z".parse::<DateTime<Utc>>().unwrap());
}

#[tokio::test]
async fn an_empty_fleet_publishes_the_release_without_an_automatic_rollout() {
    let (_db, app) = app().await;
    let published = publish_release(&app, january()).await.unwrap();
    assert_eq!(published.automatic_rollout_id, None);
    assert_eq!(release_rows(&app).await, 1);
    assert_eq!(rollout_rows(&app).await, 0);
}

#[tokio::test]
async fn a_rollouts_failed_machines_are_named_most_recent_first_with_their_reason_and_counted_in_all() {
    let (_db, app) = app().await;
    let (a, b) = (machine(&app, "web-a").await, machine(&app, "web-b").await);
    machine(&app, "web-c").await;
    let rollout = publish_release(&app, january()).await.unwrap().automatic_rollout_id.expect("a rollout");
    for (m, error, at) in [
        (a, "KB5000001 failed: 0x80070005", "2025-01-16T02:00:00Z"),
        (b, "disk full", "2025-01-17T02:00:00Z"),
    ] {
        sqlx::query(
            "update rollout_machine set state = 'failed', error = $3, updated_at = $4::timestamptz
             where rollout_id = $1 and machine_id = $2",
        )
        .bind(rollout)
        .bind(m)
        .bind(error)
        .bind(at)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let first = super::failed_machines(&app, rollout, 1).await.unwrap();
    assert_eq!(first.total, 2, "every failed machine is counted, not only those listed");
    assert_eq!(first.items.len(), 1);
    assert_eq!((first.items[0].machine_id, first.items[0].name.as_str()), (b, "web-b"));
    assert_eq!(first.items[0].error.as_deref(), Some("disk full"));
    let all = super::failed_machines(&app, rollout, 10).await.unwrap();
    let names: Vec<&str> = all.items.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["web-b", "web-a"], "the succeeded or pending machine is not listed");
    assert_eq!(super::failed_machines(&app, Uuid::now_v7(), 10).await.unwrap().total, 0);
}
