//! `rollouts watch`: polling a rollout until it ends, with its progress on stderr.

use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use super::show::{progress_counts, progress_text, show_detail};
use super::WatchArgs;
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{text, Out};
use crate::progress::Progress;

/// Polls the rollout, showing its progress on stderr (a bar on a terminal, a new line on each
/// change otherwise), until it ends; prints it, and errs unless it succeeded.
pub(super) async fn watch_rollout(
    id: Uuid,
    args: &WatchArgs,
    client: &Client,
    out: &mut Out,
) -> Result<(), CliError> {
    let mut progress = Progress::new(Duration::ZERO);
    let started = Instant::now();
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
        let (done, total) = progress_counts(&r);
        progress.update(done, total, &progress_text(&r));
        let state = r.get("state").and_then(Value::as_str).unwrap_or_default();
        if matches!(state, "succeeded" | "canceled" | "halted") {
            break r;
        }
        if args.timeout.is_some_and(|t| started.elapsed() >= Duration::from_secs(t)) {
            progress.finish();
            return Err(CliError::Unsuccessful(format!(
                "rollout {id} is still {state} after {}s",
                args.timeout.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    };
    progress.finish();
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
