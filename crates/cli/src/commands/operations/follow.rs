//! Following a started operation to its end: the progress line, the long-poll, the printed
//! operation and the verdict that sets the exit code.

use std::time::{Duration, Instant};

use hotpatch_domain::job::JobState;
use hotpatch_domain::operation::{Operation, OperationStatus};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::WaitArgs;
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{display, text, Out};
use crate::progress::Progress;

/// The longest long-poll `GET /v1/operations/{id}?wait=` the server grants.
const LONG_POLL: Duration = Duration::from_secs(30);
/// Consecutive failed polls (server briefly unreachable or 5xx) tolerated while waiting.
const POLL_FAILURES: u32 = 5;

/// Prints the warnings of a started operation, follows it when asked, prints it, and turns an
/// unsuccessful end into the error that sets the exit code.
pub(super) async fn finish(
    started: Value,
    wait: &WaitArgs,
    client: &Client,
    out: &mut Out,
) -> Result<(), CliError> {
    for w in started.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        out.note(&format!("warning: {}", one_line(&display(w))));
    }
    if !wait.wait {
        print(out, &started)?;
        return Ok(());
    }
    let done = wait_until_over(started.clone(), Duration::from_secs(wait.timeout), client).await?;
    // A rollback's plan is only in the answer that started it; keep it in what is printed.
    let mut shown = done.clone();
    if let (Some(plan), Value::Object(map)) = (started.get("plan"), &mut shown) {
        map.entry("plan").or_insert_with(|| plan.clone());
    }
    print(out, &shown)?;
    verdict(&done, client).await
}

/// Follows the operation until it is over or `timeout` passes (an error then).
async fn wait_until_over(mut op: Value, timeout: Duration, client: &Client) -> Result<Value, CliError> {
    let started = Instant::now();
    let mut progress = Progress::new(LOG_PROGRESS_EVERY);
    let mut failures = 0;
    loop {
        let parsed = parse(&op)?;
        let m = parsed.machines;
        progress.update((m.succeeded + m.failed) as u64, m.total as u64, &progress_line(&parsed));
        if parsed.status.is_final() {
            progress.finish();
            return Ok(op);
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            progress.finish();
            return Err(CliError::Unsuccessful(format!(
                "{} operation {} is still {} after {}s ({} of {} machines pending)",
                kind(&parsed),
                parsed.id,
                status(parsed.status),
                timeout.as_secs(),
                parsed.machines.pending,
                parsed.machines.total,
            )));
        }
        let wait = LONG_POLL.min(timeout - elapsed).max(Duration::from_secs(1));
        let query: Query = vec![("wait", wait.as_secs().to_string())];
        match client.long_poll(&format!("/v1/operations/{}", parsed.id), &query, wait).await {
            Ok(next) => {
                op = next;
                failures = 0;
            }
            Err(e) if e.is_transient() && failures + 1 < POLL_FAILURES => {
                failures += 1;
                progress.note(&format!("warning: polling the operation failed ({e}); trying again"));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        }
    }
}

/// Ok when the operation succeeded; otherwise the one-line reason.
async fn verdict(op: &Value, client: &Client) -> Result<(), CliError> {
    let parsed = parse(op)?;
    let what = format!("{} operation {}", kind(&parsed), parsed.id);
    let m = parsed.machines;
    match parsed.status {
        OperationStatus::Succeeded => Ok(()),
        OperationStatus::Failed => {
            let first =
                parsed.results.iter().find(|r| matches!(r.state, JobState::Failed | JobState::Expired));
            let cause = match first {
                Some(r) => format!(
                    "; first: {}: {}",
                    machine_name(client, r.machine_id).await,
                    one_line(r.error.as_deref().unwrap_or("no reason given"))
                ),
                None => String::new(),
            };
            Err(CliError::Unsuccessful(format!(
                "{what} failed on {} of {} machines{cause}",
                m.failed, m.total
            )))
        }
        OperationStatus::Canceled => Err(CliError::Unsuccessful(format!(
            "{what} was canceled: {} of {} machines did not finish",
            m.failed, m.total
        ))),
        other => Err(CliError::Unsuccessful(format!("{what} is still {}", status(other)))),
    }
}

/// `name (id)` of a machine, or its id alone when the name cannot be read.
async fn machine_name(client: &Client, id: Uuid) -> String {
    match client.get(&format!("/v1/machines/{id}"), &Query::new()).await {
        Ok(m) => match m.get("name").and_then(Value::as_str) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_string(),
        },
        Err(_) => id.to_string(),
    }
}

fn parse(op: &Value) -> Result<Operation, CliError> {
    Operation::deserialize(op).map_err(|e| CliError::Decode {
        url: "/v1/operations".to_owned(),
        reason: format!("not an operation: {e}"),
    })
}

fn kind(op: &Operation) -> &'static str {
    op.kind.into()
}

fn status(s: OperationStatus) -> &'static str {
    s.into()
}

/// An operation in table form: its fields, the failed machines, a rollback's plan.
fn print(out: &mut Out, op: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(op);
    }
    let machines = format!(
        "{} total, {} succeeded, {} failed, {} pending",
        text(op, "/machines/total"),
        text(op, "/machines/succeeded"),
        text(op, "/machines/failed"),
        text(op, "/machines/pending"),
    );
    out.fields(&[
        ("operation", text(op, "/id")),
        ("kind", text(op, "/kind")),
        ("status", text(op, "/status")),
        ("machines", machines),
        ("created", text(op, "/created_at")),
        ("finished", text(op, "/finished_at")),
    ])?;
    if let Some(steps) = op.pointer("/plan/steps").and_then(Value::as_array) {
        out.line("plan:")?;
        for (i, step) in steps.iter().enumerate() {
            let release = match step.get("release") {
                Some(r) => format!(" {} {} {}", text(r, "/kind"), text(r, "/kb"), text(r, "/month")),
                None => String::new(),
            };
            out.line(&format!("  {}. {}{release}", i + 1, text(step, "/action")))?;
        }
    }
    let failed: Vec<Vec<String>> = op
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| matches!(r.get("state").and_then(Value::as_str), Some("failed" | "canceled" | "expired")))
        .map(|r| vec![text(r, "/machine_id"), text(r, "/state"), one_line(&text(r, "/error"))])
        .collect();
    if !failed.is_empty() {
        out.table(&["machine", "state", "error"], &failed)?;
    }
    Ok(())
}

/// How often a pipeline's log (stderr not a terminal) gets a progress line: seldom enough that a
/// short wait prints only its verdict, often enough that a long one shows it is alive.
const LOG_PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// `assess 0190…: running — 3/16 succeeded, 1 failed (1 expired unclaimed), 12 pending`.
fn progress_line(op: &Operation) -> String {
    let m = op.machines;
    let expired = op.results.iter().filter(|r| r.state == JobState::Expired).count();
    let expired = if expired > 0 { format!(" ({expired} expired unclaimed)") } else { String::new() };
    format!(
        "{} {}: {} — {}/{} succeeded, {} failed{expired}, {} pending",
        kind(op),
        op.id,
        status(op.status),
        m.succeeded,
        m.total,
        m.failed,
        m.pending
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_progress_line_counts_machines_and_expired_jobs() {
        let machine = Uuid::nil();
        let op = parse(&json!({
            "id": "00000000-0000-0000-0000-000000000001", "kind": "assess", "status": "running",
            "machines": {"total": 3, "succeeded": 1, "failed": 1, "pending": 1},
            "results": [{"machine_id": machine, "job_id": machine, "state": "expired", "error": "expired: …"}],
            "results_truncated": false, "created_at": "2026-01-01T00:00:00Z", "finished_at": null
        }))
        .unwrap();
        assert_eq!(
            progress_line(&op),
            "assess 00000000-0000-0000-0000-000000000001: running — 1/3 succeeded, 1 failed \
             (1 expired unclaimed), 1 pending"
        );
    }

    #[tokio::test]
    async fn a_failed_operation_is_one_line_naming_the_first_failure() {
        // The machine's name cannot be read (nothing listens there): the id stands in.
        let client = Client::new("http://127.0.0.1:9", "t").unwrap();
        let machine = Uuid::nil();
        let op = json!({
            "id": "00000000-0000-0000-0000-000000000001", "kind": "assess", "status": "failed",
            "machines": {"total": 3, "succeeded": 2, "failed": 1, "pending": 0},
            "results": [{"machine_id": machine, "job_id": machine, "state": "failed",
                         "error": "simulated assess failure\n(0x80070643)"}],
            "results_truncated": false, "created_at": "2026-01-01T00:00:00Z", "finished_at": null
        });
        let e = verdict(&op, &client).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "assess operation 00000000-0000-0000-0000-000000000001 failed on 1 of 3 machines; \
                 first: {machine}: simulated assess failure (0x80070643)"
            )
        );
        assert_eq!(e.exit_code(), std::process::ExitCode::from(1));
    }
}
