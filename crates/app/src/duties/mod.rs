//! Background work, one duty per loop (the way River splits its maintenance services): each
//! has its own period, takes its own leader lock when only one replica may do it, counts its
//! passes, their durations and its leadership in `/metrics`, and exposes its pass (`tick`) so tests drive it with the injected clock
//! instead of waiting for the loop.
//!
//! | duty | period | who |
//! |---|---|---|
//! | [`wakeups`] (LISTEN, fan-out to waiting claims, status and change-feed streams) | — | every replica |
//! | [`presence`] (agents' last-seen marks written together) | 1 s | every replica |
//! | [`lease_reaper`] (expired leases back to the queue, backoffs woken) | 1 s | one replica |
//! | [`assessments`] (periodic assessments enqueued) | 1 s | one replica |
//! | [`dispatcher`] (rollouts advanced) | `HOTPATCH_DISPATCH_INTERVAL_MS` | one replica |
//! | [`webhook_delivery`] (events fanned out and delivered) | 1 s | every replica (deliveries leased) |
//! | [`liveness`] (lost agents and missed `operation.finished` events reported) | 1 s | one replica |
//! | [`retention`] (old events and audit log entries deleted) | 60 s | one replica |

pub mod assessments;
pub mod dispatcher;
pub mod lease_reaper;
pub mod liveness;
pub mod presence;
pub mod retention;
pub mod wakeups;
pub mod webhook_delivery;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::App;

/// Rows one pass handles per kind of work (a pass loops while batches come back full).
pub(crate) const BATCH: i64 = 1_000;

/// How often the duties that can be tuned run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Between rollout dispatcher passes.
    pub dispatch: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals { dispatch: Duration::from_secs(1) }
    }
}

/// The duties, as the `duty` label of their metrics names them.
pub const NAMES: [&str; 8] = [
    "agent_presence",
    "lease_reaper",
    "periodic_assessments",
    "rollout_dispatcher",
    "webhook_delivery",
    "agent_liveness",
    "event_retention",
    "clock_sync",
];

/// The duties that run under a singleton lock (one replica a pass): `hotpatch_leader` says
/// which replica holds each.
pub const SINGLETONS: [&str; 5] =
    ["lease_reaper", "periodic_assessments", "rollout_dispatcher", "agent_liveness", "event_retention"];

/// Records a pass of `duty` that began at `started` (see [`crate::telemetry`]).
pub(crate) fn record<T, E>(app: &App, duty: &'static str, started: Instant, outcome: &Result<Option<T>, E>) {
    app.telemetry.record(|| crate::telemetry::duty_pass(duty, started.elapsed(), outcome));
}

/// Starts every duty; they stop when `shutdown` is cancelled.
pub fn spawn(app: &App, shutdown: &CancellationToken, intervals: &Intervals) -> Vec<JoinHandle<()>> {
    let second = Duration::from_secs(1);
    let (a, s) = (app.clone(), shutdown.clone());
    let mut handles = vec![
        tokio::spawn(wakeups::run(a, s).instrument(tracing::info_span!("wakeups"))),
        tokio::spawn(
            presence::run(app.clone(), shutdown.clone()).instrument(tracing::info_span!("agent_presence")),
        ),
    ];
    let mut every = |name: &'static str, period: Duration, pass: fn(App) -> PassFuture| {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        handles.push(tokio::spawn(
            run_every(app, shutdown, name, period, pass).instrument(tracing::info_span!("duty", duty = name)),
        ));
    };
    every("periodic_assessments", second, |app| {
        Box::pin(async move { assessments::tick(&app).await.map(|p| p.map(drop)) })
    });
    every("rollout_dispatcher", intervals.dispatch, |app| {
        Box::pin(async move { dispatcher::tick(&app).await.map(|p| p.map(drop)) })
    });
    every("agent_liveness", second, |app| {
        Box::pin(async move { liveness::tick(&app).await.map(|p| p.map(drop)) })
    });
    if app.settings.clock_control {
        // A moved clock reaches every replica within a second (see `admin::sync_clock`).
        every("clock_sync", second, |app| {
            Box::pin(async move { crate::admin::sync_clock(&app).await.map(Some) })
        });
    }
    every("event_retention", retention::PERIOD, |app| {
        Box::pin(async move { retention::tick(&app).await.map(|p| p.map(drop)) })
    });
    handles.push(tokio::spawn(
        lease_reaper::run(app.clone(), shutdown.clone())
            .instrument(tracing::info_span!("duty", duty = "lease_reaper")),
    ));
    handles.push(tokio::spawn(upkeep(app.clone(), shutdown.clone())));
    handles.push(tokio::spawn(
        webhook_delivery::run(app.clone(), shutdown.clone())
            .instrument(tracing::info_span!("duty", duty = "webhook_delivery")),
    ));
    handles
}

/// Keeps the metrics' histograms drained between scrapes (see [`crate::telemetry`]).
async fn upkeep(app: App, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => app.telemetry.upkeep(),
        }
    }
}

/// One pass of a duty: `Ok(None)` when another replica holds its lock.
pub(crate) type PassFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<()>, crate::AppError>> + Send>>;

/// Runs `pass` every `period` until `shutdown`; a failed pass is logged and the next one retries.
pub(crate) async fn run_every<F, Fut>(
    app: App,
    shutdown: CancellationToken,
    name: &'static str,
    period: Duration,
    pass: F,
) where
    F: Fn(App) -> Fut,
    Fut: Future<Output = Result<Option<()>, crate::AppError>>,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let started = Instant::now();
        let outcome = pass(app.clone()).await;
        record(&app, name, started, &outcome);
        if let Err(e) = outcome {
            tracing::warn!(error = %e, duty = name, "pass failed; retrying next period");
        }
    }
}
