//! The background duties, each driven by its own pass with the injected clock against a real
//! PostgreSQL (a fresh database per test), and each skipping its pass while another replica holds
//! its leader lock. Nothing sleeps: the tests call the passes the loops would call.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use chrono::{DateTime, Utc};
use hotpatch_app::duties::{assessments, lease_reaper, liveness, retention};
use hotpatch_app::{App, Clock, Settings};
use hotpatch_domain::job::{JobKind, JobState};
use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::{agents, events, jobs, PgPool};
use support::{job, machine, secs, t0, TTL};

/// The services with the clock standing at `now`.
fn app_at(pool: &PgPool, now: DateTime<Utc>) -> App {
    App::new(pool.clone(), Settings::default()).with_clock(Clock::manual(now))
}

#[tokio::test]
async fn the_lease_reaper_puts_a_job_whose_lease_expired_back_in_the_queue() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let id = jobs::enqueue(&db.pool, &job(JobKind::Assess, m, t0())).await.unwrap();
    jobs::claim(&db.pool, m, t0(), TTL).await.unwrap().expect("claimable");
    let before = t0() + TTL - secs(1);
    let app = app_at(&db.pool, before);
    assert_eq!(lease_reaper::tick(&app, t0(), before).await.unwrap().map(|r| r.requeued), Some(0));
    let after = t0() + TTL + secs(1);
    let reaped = lease_reaper::tick(&app, before, after).await.unwrap().expect("no other replica");
    assert_eq!((reaped.requeued, reaped.failed), (1, 0));
    assert_eq!(jobs::get(&db.pool, id, m).await.unwrap().unwrap().state, JobState::Queued);
}

#[tokio::test]
async fn periodic_assessments_enqueue_one_job_per_machine_whose_assessment_is_due() {
    let db = fresh_db().await;
    let (due, later) = (machine(&db.pool).await, machine(&db.pool).await);
    agents::ensure(&db.pool, due, t0()).await.unwrap();
    agents::ensure(&db.pool, later, t0() + secs(3600)).await.unwrap();
    let app = app_at(&db.pool, t0());
    assert_eq!(assessments::tick(&app).await.unwrap(), Some(1));
    assert_eq!(assessments::tick(&app).await.unwrap(), Some(0), "its next assessment is an interval away");
    let claimed = jobs::claim(&db.pool, due, t0(), TTL).await.unwrap().expect("an assessment");
    assert_eq!(claimed.kind, JobKind::Assess);
    assert!(jobs::claim(&db.pool, later, t0(), TTL).await.unwrap().is_none());
}

#[tokio::test]
async fn agent_liveness_reports_an_agent_lost_once_per_silence() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    agents::ensure(&db.pool, m, t0() + secs(86_400)).await.unwrap();
    agents::mark_seen(&db.pool, &[(m, t0())]).await.unwrap();
    let quiet = t0() + events::AGENT_SILENCE - secs(1);
    assert_eq!(liveness::tick(&app_at(&db.pool, quiet)).await.unwrap().map(|r| r.lost), Some(0));
    let silent = t0() + events::AGENT_SILENCE + secs(1);
    assert_eq!(liveness::tick(&app_at(&db.pool, silent)).await.unwrap().map(|r| r.lost), Some(1));
    assert_eq!(liveness::tick(&app_at(&db.pool, silent)).await.unwrap().map(|r| r.lost), Some(0));
}

#[tokio::test]
async fn event_retention_deletes_only_events_past_their_retention() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    agents::ensure(&db.pool, m, t0() + secs(86_400)).await.unwrap();
    agents::mark_seen(&db.pool, &[(m, t0())]).await.unwrap();
    liveness::tick(&app_at(&db.pool, t0() + events::AGENT_SILENCE + secs(1))).await.unwrap();
    let written: i64 = sqlx::query_scalar("select count(*) from event").fetch_one(&db.pool).await.unwrap();
    assert!(written >= 1, "agent.lost was written");
    let app = app_at(&db.pool, t0());
    assert_eq!(retention::tick(&app).await.unwrap().map(|d| d.events), Some(0), "nothing is a week old");
    // Retention goes by database time (a moved service clock must not empty the feed).
    sqlx::query("update event set created_at = now() - interval '8 days'").execute(&db.pool).await.unwrap();
    assert_eq!(retention::tick(&app).await.unwrap().map(|d| d.events), Some(written as u64));
}

#[tokio::test]
async fn a_duty_whose_lock_another_replica_holds_skips_its_pass() {
    let db = fresh_db().await;
    let app = app_at(&db.pool, t0());
    let mut other = db.pool.begin().await.unwrap();
    for lock in [
        Singleton::LeaseReaper,
        Singleton::PeriodicAssessments,
        Singleton::AgentLiveness,
        Singleton::EventRetention,
    ] {
        assert!(leader::try_lock(&mut other, lock).await.unwrap());
    }
    assert!(lease_reaper::tick(&app, t0(), t0()).await.unwrap().is_none());
    assert!(assessments::tick(&app).await.unwrap().is_none());
    assert!(liveness::tick(&app).await.unwrap().is_none());
    assert!(retention::tick(&app).await.unwrap().is_none());
    other.rollback().await.unwrap();
    assert!(
        lease_reaper::tick(&app, t0(), t0()).await.unwrap().is_some(),
        "the lock went with its transaction"
    );
}
