//! Subscriptions to the change feed (`GET /v1/events`): which event types exist, and one
//! subscriber's position in the feed.
//!
//! A subscription first replays the stored events after the position it resumes from, then
//! follows the process's fan-out ([`feed::Feed`]), with no gap and no duplicate:
//! it subscribes to the fan-out before reading the backlog and skips ids it already passed. While
//! waiting it holds no database connection. How the events are framed for a client is the API's.

pub mod feed;

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use hotpatch_store::events;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

pub use hotpatch_store::events::{Event, TYPES};

use crate::error::AppError;
use crate::App;
use feed::Batch;

/// Events read from the table per query.
const PAGE: i64 = 500;

/// What a subscriber asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Only these types (see [`type_filter`]); all when `None`.
    pub types: Option<Vec<String>>,
    /// Replay the stored events after this id, then go on live; live only when `None`.
    pub after: Option<i64>,
}

/// The event types a subscriber names, each once; a 400 names an unknown one, or no type at all.
pub fn type_filter<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, AppError> {
    let mut types: Vec<String> = vec![];
    for t in names {
        if !TYPES.contains(&t) {
            return Err(AppError::bad_param(
                "types",
                format!("unknown event type {:?} (known: {})", t, TYPES.join(", ")),
            ));
        }
        if !types.iter().any(|have| have == t) {
            types.push(t.to_owned());
        }
    }
    if types.is_empty() {
        return Err(AppError::bad_param("types", "names no event type"));
    }
    Ok(types)
}

/// Subscribes to the feed from `request.after` (or from now).
pub async fn subscribe(app: &App, request: Request) -> Result<Subscription, AppError> {
    // Subscribe first: whatever commits while the backlog is read arrives here too.
    let live = app.wakeups.feed().subscribe();
    let (last, pending) = match request.after {
        Some(after) => (after, Some(None)),
        None => (events::last_id(&app.pool).await?, None),
    };
    Ok(Subscription { app: app.clone(), live, last, types: request.types, queue: VecDeque::new(), pending })
}

/// One subscriber's position in the feed.
pub struct Subscription {
    app: App,
    live: Receiver<Arc<Batch>>,
    /// Every event with an id up to this one was passed on or filtered out.
    last: i64,
    types: Option<Vec<String>>,
    /// Read, not yet passed on.
    queue: VecDeque<Event>,
    /// Reading from the table is under way, up to this id (`Some(None)`: up to the newest).
    pending: Option<Option<i64>>,
}

impl Subscription {
    /// The events, in id order, until the process stops or the feed fails (logged: the client
    /// resumes from the last id it received).
    pub fn into_stream(self) -> impl Stream<Item = Event> + Send + 'static {
        futures::stream::unfold(self, |mut subscription| async move {
            let wakeups = subscription.app.wakeups.clone();
            let stopping = subscription.app.shutdown.clone();
            let next = tokio::select! {
                next = subscription.next() => next,
                // The process is stopping: end the stream (the client resumes elsewhere).
                () = wakeups.feed().stopped() => return None,
                () = stopping.cancelled() => return None,
            };
            match next {
                Ok(Some(event)) => Some((event, subscription)),
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

    /// The next event; `None` when the feed is gone.
    pub async fn next(&mut self) -> Result<Option<Event>, AppError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if let Some(upto) = self.pending {
                self.read_stored(upto).await?;
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => self.take(&batch).await?,
                // Too slow for the broadcast: what was missed is in the table.
                Err(RecvError::Lagged(_)) => self.pending = Some(None),
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Queues the wanted events of a live batch not passed yet.
    async fn take(&mut self, batch: &Batch) -> Result<(), AppError> {
        if batch.after > self.last {
            // Events before this batch that this subscription has not seen (it subscribed before
            // the feed started, or fell behind): read them first.
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
        Ok(())
    }

    /// Reads one page of stored events after `last` (up to `upto`) into the queue.
    async fn read_stored(&mut self, upto: Option<i64>) -> Result<(), AppError> {
        let page = events::after(&self.app.pool, self.last, upto, self.types.as_deref(), PAGE).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_filter_names_each_known_type_once() {
        let types = type_filter(["agent.lost", "operation.finished", "agent.lost"]).expect("known types");
        assert_eq!(types, ["agent.lost", "operation.finished"]);
    }

    #[test]
    fn an_unknown_type_or_none_at_all_is_refused() {
        assert!(matches!(type_filter(["machine.exploded"]), Err(AppError::BadRequest { .. })));
        assert!(matches!(type_filter([]), Err(AppError::BadRequest { .. })));
    }
}
