//! Webhook delivery as a duty: a pass a second on every replica (deliveries are leased, so none
//! goes twice; see [`crate::webhooks::delivery`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::webhooks::{delivery, WebhookClient};
use crate::App;

/// Between passes.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Delivers every [`PERIOD`] until `shutdown`.
pub async fn run(app: App, shutdown: CancellationToken) {
    let client = match WebhookClient::new(app.settings.webhook_allow.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: webhooks are not delivered");
            return;
        }
    };
    let pass = move |app: App| {
        let client = client.clone();
        async move { delivery::pass(&app, &client).await.map(|_| Some(())) }
    };
    super::run_every(app, shutdown, "webhook_delivery", PERIOD, pass).await;
}
