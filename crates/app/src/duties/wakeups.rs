//! The LISTEN connection of this replica: notifications wake waiting claims, drop kept patch
//! status answers, and feed the change feed's open streams (see [`crate::wakeups`]; the connection
//! and the channels are `hotpatch_store::wakeup`'s).
//! Notifications are hints: waiters re-check on a timer, and all of them when the connection drops.

use tokio_util::sync::CancellationToken;

use crate::App;

/// Listens until `shutdown`, reconnecting when the connection drops.
pub async fn run(app: App, shutdown: CancellationToken) {
    app.wakeups.clone().run(app.pool.clone(), shutdown.cancelled_owned()).await
}
