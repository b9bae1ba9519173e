//! Agents' last-seen marks: each replica writes the marks its agents left in memory (see
//! [`crate::queue::presence`]) in one statement a second, and once more at shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::App;

/// Between writes.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Writes this replica's marks every [`PERIOD`] until `shutdown`, then a last time.
pub async fn run(app: App, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = interval.tick() => false,
        };
        let started = std::time::Instant::now();
        let outcome = app.presence.flush(&app.pool).await.map(Some);
        super::record(&app, "agent_presence", started, &outcome);
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "writing agents' last-seen marks failed; retrying");
        }
        if stopping {
            return;
        }
    }
}
