//! `GET /console/events`: the change feed for a signed-in browser (an `EventSource` cannot send
//! a bearer token, so the session stands in for it). Each event goes out unnamed with its type
//! and ids; the page's script turns it into a refresh of the live regions. The stream ends
//! when the session's token is revoked or expires, and counts against the token's open streams,
//! as `/v1/events` does.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use hotpatch_app::{events, tokens};

use crate::error::ConsoleError;
use crate::session::SignedIn;
use crate::Host;

/// A comment this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream of what changed, from now on.
pub async fn events<H: Host>(State(host): State<H>, who: SignedIn) -> Result<Response, ConsoleError> {
    // A stream holds a connection for as long as it runs: counted with the token's `/v1/events`.
    let held = host.hold_stream(who.session.token_id).map_err(ConsoleError::TooMany)?;
    let app = host.app().clone();
    let subscription = events::subscribe(&app, events::Request::default()).await?;
    let token_id = who.session.token_id;
    let revoked = async move { tokens::no_longer_valid(&app, token_id).await };
    let stream = subscription.into_stream().take_until(revoked).map(move |event| {
        let _place = &held;
        let mut data = serde_json::json!({ "id": event.id, "type": event.kind });
        if let (Some(out), Some(fields)) = (data.as_object_mut(), event.data.as_object()) {
            for (k, v) in fields {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok::<_, Infallible>(SseEvent::default().data(data.to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}
