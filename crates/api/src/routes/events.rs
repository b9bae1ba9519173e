//! The change feed, `GET /v1/events`: Server-Sent Events of machine status changes, finished
//! operations, rollout progress and agents connecting or lost, so a portal can stop polling.
//!
//! A response replays the stored events after `Last-Event-ID` (or `?after=`), then sends new ones
//! live, with no gap and no duplicate: that is the subscription of [`hotpatch_app::events`]. This
//! module reads the request and frames the events as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use hotpatch_app::events::{self, Event};
use hotpatch_app::tokens;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// Interval of the keep-alive comments (proxies close idle connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// The change feed, as Server-Sent Events.
///
/// Each event has an `id` (increasing), an `event` (its
/// type: `machine.status_changed`, `operation.finished`, `rollout.progressed`, `rollout.halted`,
/// `agent.connected`, `agent.lost`) and `data`: a JSON object with `id`, `type`, the ids it is
/// about, a few fields of the change and `at`. Reconnecting with `Last-Event-ID` (or `?after=`)
/// replays the stored events after it (kept 7 days), then continues live. Keep-alive comments
/// every 15 s.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("types" = Option<String>, Query, description = "Comma-separated event types to send (default: all)"),
        ("after" = Option<i64>, Query, description = "Replay events after this id (as `Last-Event-ID`, which wins when both are given)"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id received: replay from there")),
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 400, description = "Unknown event type, bad `after` or `Last-Event-ID`, or unknown parameter", body = Problem)),
    security(("bearer" = [])))]
async fn stream_events(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let request = parse(raw.as_deref(), &headers)?;
    // Each stream holds a connection (a file descriptor) for as long as it runs: capped per token
    // and per replica, its place freed when the stream ends.
    let held = state.limits.streams.hold(reader.0.token_id)?;
    let subscription = events::subscribe(&state, request).await?;
    // A revoked (or expired) token's stream ends: it must not go on receiving events.
    let app = state.app.clone();
    let token_id = reader.0.token_id;
    let revoked = async move { tokens::no_longer_valid(&app, token_id).await };
    let stream = subscription.into_stream().take_until(revoked).map(move |event| {
        let _place = &held;
        Ok::<_, Infallible>(sse(&event))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

/// What a request asks for: `?types=` and `?after=`, or the `Last-Event-ID` header, which wins.
fn parse(raw: Option<&str>, headers: &HeaderMap) -> Result<events::Request, ApiError> {
    let mut request = events::Request::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "types" => {
                request.types =
                    Some(events::type_filter(v.split(',').map(str::trim).filter(|t| !t.is_empty()))?)
            }
            "after" => request.after = Some(parse_id("after", &v)?),
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: types, after)",
                ))
            }
        }
    }
    if let Some(v) = headers.get("last-event-id") {
        let v = v.to_str().map_err(|_| ApiError::bad_param("Last-Event-ID", "must be an event id"))?;
        // An empty value is how a client says "no last event" (per the SSE spec's reset).
        if !v.trim().is_empty() {
            request.after = Some(parse_id("Last-Event-ID", v)?);
        }
    }
    Ok(request)
}

fn parse_id(name: &str, v: &str) -> Result<i64, ApiError> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::bad_param(name, "must be an event id"))
}

/// An event as sent: `id`, `event` and `data` (its fields, with `id` and `type`).
fn sse(event: &Event) -> SseEvent {
    let mut data = serde_json::json!({ "id": event.id, "type": event.kind });
    if let (Some(out), Some(fields)) = (data.as_object_mut(), event.data.as_object()) {
        for (k, v) in fields {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    SseEvent::default().id(event.id.to_string()).event(event.kind.clone()).data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_last_event_id_header_wins_over_the_after_parameter() {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_static("42"));
        let p = parse(Some("after=7&types=agent.lost,agent.lost"), &headers).expect("valid");
        assert_eq!(p, events::Request { types: Some(vec!["agent.lost".to_owned()]), after: Some(42) });
    }

    #[test]
    fn unknown_types_and_bad_ids_are_refused() {
        let none = HeaderMap::new();
        assert!(parse(Some("types=machine.exploded"), &none).is_err());
        assert!(parse(Some("types=,"), &none).is_err());
        assert!(parse(Some("after=-1"), &none).is_err());
        assert!(parse(Some("after=x"), &none).is_err());
        assert!(parse(Some("since=1"), &none).is_err());
    }
}
