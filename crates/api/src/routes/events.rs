//! The change feed, `GET /v1/events`: Server-Sent Events of machine status changes, finished
//! operations, rollout progress and agents connecting or lost, so a portal can stop polling.
//!
//! A response first replays the stored events after `Last-Event-ID` (or `?after=`), then sends new
//! ones as the process's feed reads them (see `hotpatch_store::events`), with no gap and no
//! duplicate: it subscribes to the feed before reading the backlog and skips ids it already sent.
//! While waiting it holds no database connection.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use hotpatch_store::events::{self, Batch, Event};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// Events read from the table per query.
const PAGE: i64 = 500;
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
    _: Reader,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &headers)?;
    // Subscribe first: whatever commits while the backlog is read arrives here too.
    let feed = state.wakeups.feed();
    let live = feed.subscribe();
    let (last, pending) = match params.after {
        Some(after) => (after, Some(None)),
        None => (events::last_id(&state.pool).await?, None),
    };
    let cursor =
        Cursor { state: state.clone(), live, last, types: params.types, queue: VecDeque::new(), pending };
    Ok(Sse::new(cursor.into_stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response())
}

/// What a request asks for.
#[derive(Debug, PartialEq)]
struct Params {
    /// Only these types (all when `None`).
    types: Option<Vec<String>>,
    /// Replay after this id (live only when `None`).
    after: Option<i64>,
}

impl Params {
    fn parse(raw: Option<&str>, headers: &HeaderMap) -> Result<Params, ApiError> {
        let mut params = Params { types: None, after: None };
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "types" => params.types = Some(parse_types(&v)?),
                "after" => params.after = Some(parse_id("after", &v)?),
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
                params.after = Some(parse_id("Last-Event-ID", v)?);
            }
        }
        Ok(params)
    }
}

fn parse_types(v: &str) -> Result<Vec<String>, ApiError> {
    let mut types: Vec<String> = vec![];
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !events::TYPES.contains(&t) {
            return Err(ApiError::bad_param(
                "types",
                format!("unknown event type {:?} (known: {})", t, events::TYPES.join(", ")),
            ));
        }
        if !types.iter().any(|have| have == t) {
            types.push(t.to_owned());
        }
    }
    if types.is_empty() {
        return Err(ApiError::bad_param("types", "names no event type"));
    }
    Ok(types)
}

fn parse_id(name: &str, v: &str) -> Result<i64, ApiError> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::bad_param(name, "must be an event id"))
}

/// One response's position in the feed.
struct Cursor {
    state: AppState,
    live: Receiver<Arc<Batch>>,
    /// Every event with an id up to this one was sent or filtered out.
    last: i64,
    types: Option<Vec<String>>,
    /// Read, not yet sent.
    queue: VecDeque<Event>,
    /// Reading from the table is under way, up to this id (`Some(None)`: up to the newest).
    pending: Option<Option<i64>>,
}

impl Cursor {
    fn into_stream(self) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        futures::stream::unfold(self, |mut cursor| async move {
            let stopped = cursor.state.wakeups.clone();
            let next = tokio::select! {
                next = cursor.next() => next,
                // The process is stopping: end the response (the client resumes elsewhere).
                () = stopped.feed().stopped() => return None,
            };
            match next {
                Ok(Some(event)) => Some((Ok(sse(&event)), cursor)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed stream ended; the client resumes with Last-Event-ID");
                    None
                }
            }
        })
    }

    fn wants(&self, event: &Event) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(&event.kind))
    }

    /// The next event to send; `None` when the feed is gone.
    async fn next(&mut self) -> Result<Option<Event>, ApiError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if let Some(upto) = self.pending {
                self.read_stored(upto).await?;
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => {
                    if batch.after > self.last {
                        // Events before this batch that this response has not seen (it subscribed
                        // before the feed started, or fell behind): read them first.
                        self.pending = Some(Some(batch.after));
                        while self.pending.is_some() {
                            self.read_stored(Some(batch.after)).await?;
                        }
                    }
                    for event in &batch.events {
                        if event.id > self.last {
                            self.last = event.id;
                            if self.wants(event) {
                                self.queue.push_back(event.clone());
                            }
                        }
                    }
                }
                // Too slow for the broadcast: what was missed is in the table.
                Err(RecvError::Lagged(_)) => self.pending = Some(None),
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Reads one page of stored events after `last` (up to `upto`) into the queue.
    async fn read_stored(&mut self, upto: Option<i64>) -> Result<(), ApiError> {
        let page = events::after(&self.state.pool, self.last, upto, self.types.as_deref(), PAGE).await?;
        let full = page.len() as i64 == PAGE;
        if let Some(last) = page.last() {
            self.last = last.id;
        }
        self.queue.extend(page);
        if !full {
            self.pending = None;
            if let Some(upto) = upto {
                self.last = self.last.max(upto);
            }
        }
        Ok(())
    }
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
        let p = Params::parse(Some("after=7&types=agent.lost,agent.lost"), &headers).expect("valid");
        assert_eq!(p, Params { types: Some(vec!["agent.lost".to_owned()]), after: Some(42) });
    }

    #[test]
    fn unknown_types_and_bad_ids_are_refused() {
        let none = HeaderMap::new();
        assert!(Params::parse(Some("types=machine.exploded"), &none).is_err());
        assert!(Params::parse(Some("types=,"), &none).is_err());
        assert!(Params::parse(Some("after=-1"), &none).is_err());
        assert!(Params::parse(Some("after=x"), &none).is_err());
        assert!(Params::parse(Some("since=1"), &none).is_err());
    }
}
