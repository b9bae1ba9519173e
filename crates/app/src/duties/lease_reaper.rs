//! The lease reaper: leases that expired go back to the queue with exponential backoff and
//! jitter (or fail after `max_attempts`), queued jobs no agent claimed within the job
//! time-to-live end `expired` (so their operations finish), and jobs whose backoff passed since
//! the last pass wake their machine's waiting claim. One replica a pass.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::RetryPolicy;
use hotpatch_store::jobs;
use hotpatch_store::leader::{self, Singleton};
use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use super::BATCH;
use crate::{App, AppError};

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs back in the queue.
    pub requeued: u64,
    /// Jobs failed for good (out of attempts).
    pub failed: u64,
    /// Queued jobs ended `expired` (unclaimed past the job time-to-live).
    pub expired: u64,
    /// Machines woken because a job's backoff passed.
    pub woken: u64,
}

/// One pass: reaps leases expired at `now` and wakes jobs due in `(last, now]`; `None` when
/// another replica holds the reaper.
pub async fn tick(app: &App, last: DateTime<Utc>, now: DateTime<Utc>) -> Result<Option<Reaped>, AppError> {
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::LeaseReaper).await? {
        return Ok(None);
    }
    let policy = RetryPolicy::default();
    let mut done = Reaped::default();
    loop {
        let reaped = jobs::reap_expired(&mut tx, now, &policy, BATCH, || rand::thread_rng().gen()).await?;
        done.requeued += reaped.requeued;
        done.failed += reaped.failed;
        if reaped.requeued + reaped.failed < BATCH as u64 {
            break;
        }
    }
    let reason = crate::operations::reach::expiry_reason(app.settings.job_ttl);
    loop {
        let n = jobs::expire_unclaimed(&mut tx, now - app.settings.job_ttl, now, &reason, BATCH).await?;
        done.expired += n;
        if n < BATCH as u64 {
            break;
        }
    }
    done.woken = jobs::notify_due(&mut *tx, last, now).await?;
    tx.commit().await?;
    app.telemetry.record(|| {
        metrics::counter!("hotpatch_leases_expired_total", "outcome" => "requeued").increment(done.requeued);
        metrics::counter!("hotpatch_leases_expired_total", "outcome" => "failed").increment(done.failed);
        metrics::counter!("hotpatch_jobs_expired_total").increment(done.expired);
    });
    if done.expired > 0 {
        tracing::info!(expired = done.expired, "unclaimed jobs expired");
    }
    if done.requeued + done.failed > 0 {
        tracing::info!(requeued = done.requeued, failed = done.failed, "expired leases reaped");
    }
    Ok(Some(done))
}

/// Reaps once a second until `shutdown`. A failed pass is retried from the same `last`, so no
/// due job is skipped.
pub async fn run(app: App, shutdown: CancellationToken) {
    let mut last = app.clock.now();
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = app.clock.now();
        let started = std::time::Instant::now();
        let outcome = tick(&app, last, now).await;
        super::record(&app, "lease_reaper", started, &outcome);
        match outcome {
            Ok(_) => last = now,
            Err(e) => tracing::warn!(error = %e, "lease reaper pass failed; retrying next second"),
        }
    }
}
