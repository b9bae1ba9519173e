//! `hotpatchctl events tail`: follows the change feed (`GET /v1/events`, Server-Sent Events) and
//! prints each event as it comes, reconnecting after a broken connection from the last event
//! seen (`Last-Event-ID`), so nothing is missed or printed twice.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{display, Out};

/// Pause before reconnecting after the stream broke; doubled up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print change-feed events as they happen (`--output json`: one JSON object per line).
    Tail(TailArgs),
}

/// Arguments of `events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only events of this type (repeatable), e.g. `operation.finished`, `rollout.halted`.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// First replay the stored events after this event id (kept 7 days; 0 for all of them).
    #[arg(long)]
    pub since: Option<i64>,
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
}

/// One event of the stream: its id, type and data (a JSON object).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:` (the last one seen when the event had none).
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub kind: String,
    /// The `data:` lines, joined.
    pub data: String,
}

/// A Server-Sent Events parser fed with the body's chunks as they come.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    id: Option<String>,
    kind: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Adds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent {
                        id: self.id.clone(),
                        kind: self.kind.take().unwrap_or_else(|| "message".to_owned()),
                        data: self.data.join("\n"),
                    });
                }
                self.data.clear();
                self.kind = None;
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment: the keep-alive
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "id" => self.id = Some(value),
                "event" => self.kind = Some(value),
                "data" => self.data.push(value),
                _ => {}
            }
        }
        events
    }
}

/// Runs an `events` subcommand.
pub async fn run(command: EventsCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let EventsCommand::Tail(args) = command;
    let mut query = Query::new();
    if !args.types.is_empty() {
        query.push(("types", args.types.join(",")));
    }
    let mut last_id = args.since.map(|s| s.to_string());
    let mut printed = 0u64;
    let mut backoff = BACKOFF;
    loop {
        let headers: Vec<(&str, String)> = last_id.iter().map(|id| ("Last-Event-ID", id.clone())).collect();
        let mut response = match client.open_stream("/v1/events", &query, &headers).await {
            Ok(r) => r,
            Err(e) if e.is_transient() => {
                out.note(&format!("warning: {e}; reconnecting in {}s", backoff.as_secs()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut parser = SseParser::default();
        let ended = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    backoff = BACKOFF;
                    for event in parser.push(&chunk) {
                        print(out, &event)?;
                        last_id = event.id.clone().or(last_id);
                        printed += 1;
                        if args.count.is_some_and(|n| printed >= n) {
                            return Ok(());
                        }
                    }
                }
                Ok(None) => break "the server ended the stream".to_owned(),
                Err(e) => break client.stream_error("/v1/events", &e).to_string(),
            }
        };
        out.note(&format!("warning: {ended}; reconnecting in {}s", backoff.as_secs()));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One event: its JSON on one line, or `id  type  at  field=value…` for people.
fn print(out: &mut Out, event: &SseEvent) -> Result<(), CliError> {
    let data: Value = serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
    if out.is_json() {
        let line = serde_json::to_string(&data).map_err(|e| CliError::Write(e.into()))?;
        out.line(&line)?;
        return out.flush();
    }
    let mut rest: Vec<String> = Vec::new();
    if let Value::Object(fields) = &data {
        for (k, v) in fields {
            if !matches!(k.as_str(), "id" | "type" | "at") {
                rest.push(format!("{k}={}", display(v)));
            }
        }
    }
    let at = data.get("at").map(display).unwrap_or_else(|| "-".to_owned());
    let id = event.id.as_deref().unwrap_or("-");
    out.line(&format!("{id}  {}  {at}  {}", event.kind, rest.join(" ")))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunks_and_comments_are_skipped() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nid: 7\nevent: agent.lost\nda").is_empty());
        let events = p.push(b"ta: {\"machine_id\":\"m\"}\r\n\r\nid: 8\ndata: a\ndata: b\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    kind: "agent.lost".into(),
                    data: "{\"machine_id\":\"m\"}".into()
                },
                SseEvent { id: Some("8".into()), kind: "message".into(), data: "a\nb".into() },
            ]
        );
    }
}
