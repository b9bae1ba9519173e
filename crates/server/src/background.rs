//! The background loops of `hotpatchd`: the LISTEN connection that wakes long-polls, and the
//! queue's maintenance tick (reap expired leases, wake jobs whose backoff passed, enqueue due
//! periodic assessments) under one advisory lock, so N replicas are safe; and the batched write of
//! agents' last-seen marks (each replica its own); and the rollout dispatcher (one replica). The
//! LISTEN loop also feeds this replica's change feed (`GET /v1/events`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_api::AppState;
use hotpatch_domain::job::RetryPolicy;
use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::{agents, events, jobs, StoreError};
use rand::Rng as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// How often the maintenance tick runs.
const TICK: Duration = Duration::from_secs(1);
/// How often agents' liveness marks are written (see `hotpatch_api::presence`).
const PRESENCE_FLUSH: Duration = Duration::from_secs(1);
/// Rows one tick handles per kind of work (it loops while batches come back full).
const BATCH: i64 = 1_000;

/// How often the loops that can be tuned run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Between rollout dispatcher passes.
    pub dispatch: Duration,
}

/// Starts the loops; they stop when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken, intervals: &Intervals) -> Vec<JoinHandle<()>> {
    let listen = {
        let (hub, pool, token) = (state.wakeups.clone(), state.pool.clone(), shutdown.clone());
        tokio::spawn(
            async move { hub.run(pool, token.cancelled_owned()).await }
                .instrument(tracing::info_span!("wakeups")),
        )
    };
    let tick = {
        let (state, token) = (state.clone(), shutdown.clone());
        tokio::spawn(maintenance(state, token).instrument(tracing::info_span!("queue_maintenance")))
    };
    let presence = {
        let (state, token) = (state.clone(), shutdown.clone());
        tokio::spawn(presence(state, token).instrument(tracing::info_span!("agent_presence")))
    };
    let rollouts = {
        let (state, token, every) = (state.clone(), shutdown.clone(), intervals.dispatch);
        tokio::spawn(dispatch(state, token, every).instrument(tracing::info_span!("rollout_dispatch")))
    };
    let webhooks = {
        let (state, token) = (state.clone(), shutdown.clone());
        tokio::spawn(deliver(state, token).instrument(tracing::info_span!("webhook_delivery")))
    };
    vec![listen, tick, presence, rollouts, webhooks]
}

/// Runs `pass` every `every` until `shutdown`; a failed pass is logged and the next one retries.
async fn every<F, Fut, T, E>(every: Duration, shutdown: CancellationToken, what: &str, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        if let Err(e) = pass().await {
            tracing::warn!(error = %e, "{what} failed; retrying next tick");
        }
    }
}

/// Advances rollouts every `period` (one replica does the work; see `hotpatch_api::dispatch`).
async fn dispatch(state: AppState, shutdown: CancellationToken, period: Duration) {
    every(period, shutdown, "rollout dispatch", || hotpatch_api::dispatch::tick(&state)).await;
}

/// Delivers webhooks once a second (every replica takes part; see `hotpatch_api::webhooks`).
async fn deliver(state: AppState, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: webhooks are not delivered");
            return;
        }
    };
    every(TICK, shutdown, "webhook delivery pass", || hotpatch_api::webhooks::pass(&state, &http)).await;
}

/// Writes this replica's agent liveness marks once a second, and once more at shutdown.
async fn presence(state: AppState, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(PRESENCE_FLUSH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = interval.tick() => false,
        };
        if let Err(e) = state.presence.flush(&state.pool).await {
            tracing::warn!(error = %e, "writing agents' last-seen marks failed; retrying");
        }
        if stopping {
            return;
        }
    }
}

async fn maintenance(state: AppState, shutdown: CancellationToken) {
    let mut last = state.clock.now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = state.clock.now();
        match tick(&state, last, now).await {
            Ok(()) => last = now,
            // The next tick retries (from the same `last`, so no due job is skipped).
            Err(e) => tracing::warn!(error = %e, "queue maintenance failed; retrying next tick"),
        }
    }
}

/// One pass, in one transaction under the maintenance lock; skipped when another replica holds it.
async fn tick(state: &AppState, last: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = state.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::QueueMaintenance).await? {
        return Ok(());
    }
    let policy = RetryPolicy::default();
    loop {
        let reaped = jobs::reap_expired(&mut tx, now, &policy, BATCH, || rand::thread_rng().gen()).await?;
        if reaped.requeued + reaped.failed > 0 {
            tracing::info!(requeued = reaped.requeued, failed = reaped.failed, "expired leases reaped");
        }
        if reaped.requeued + reaped.failed < BATCH as u64 {
            break;
        }
    }
    jobs::notify_due(&mut *tx, last, now).await?;
    let interval = state.settings.assessment_interval;
    loop {
        let due = agents::take_due_assessments(&mut *tx, now, interval, BATCH).await?;
        if !due.is_empty() {
            jobs::enqueue_assessments(&mut tx, None, &due, 0, now).await?;
            tracing::info!(machines = due.len(), "periodic assessments enqueued");
        }
        if (due.len() as i64) < BATCH {
            break;
        }
    }
    // The change feed: agents silent for two minutes are reported lost (once per silence),
    // finished operations whose event the commit-time check missed get it, and events past their
    // retention go.
    events::report_lost_agents(&mut *tx, now, BATCH).await?;
    events::sweep_finished_operations(&mut *tx, BATCH as i32).await?;
    events::delete_older_than(&mut *tx, events::RETENTION, BATCH).await?;
    tx.commit().await?;
    Ok(())
}
