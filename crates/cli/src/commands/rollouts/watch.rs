//! `rollouts watch`: polling a rollout until it ends, with the progress line on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::show::{progress_text, show_detail};
use super::WatchArgs;
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{text, Out};

/// Polls the rollout, drawing the progress line on stderr (in place on a terminal, a new line
/// on each change otherwise), until it ends; prints it, and errs unless it succeeded.
pub(super) async fn watch_rollout(
    id: Uuid,
    args: &WatchArgs,
    client: &Client,
    out: &mut Out,
) -> Result<(), CliError> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    let mut failures = 0;
    let r = loop {
        let r = match client.get(&format!("/v1/rollouts/{id}"), &Query::new()).await {
            Ok(r) => {
                failures = 0;
                r
            }
            // The client already retried; keep watching through a short outage.
            Err(e) if e.is_transient() && failures < 5 => {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let line = progress_text(&r);
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if line != last {
            out.note(&line);
        }
        last = line;
        let state = r.get("state").and_then(Value::as_str).unwrap_or_default();
        if matches!(state, "succeeded" | "canceled" | "halted") {
            break r;
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= Duration::from_secs(t)) {
            if tty {
                eprintln!();
            }
            return Err(CliError::Unsuccessful(format!(
                "rollout {id} is still {state} after {}s",
                args.timeout.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    };
    if tty {
        eprintln!();
    }
    show_detail(out, &r)?;
    match r.get("state").and_then(Value::as_str).unwrap_or_default() {
        "succeeded" => Ok(()),
        "halted" => Err(CliError::Unsuccessful(format!(
            "rollout {id} halted: {}",
            one_line(&text(&r, "/halted_reason"))
        ))),
        other => Err(CliError::Unsuccessful(format!("rollout {id} was {other}"))),
    }
}
