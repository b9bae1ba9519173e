//! `hotpatchctl rollouts …`: availability-first rollouts of a release. Preview the plan, start
//! one, list and show them, watch one with a progress bar until it ends, pause, resume, cancel.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{list, page_table, PageArgs, SelectorArgs};
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{items, text, Out};

/// `rollouts` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutsCommand {
    /// The plan a rollout would follow (waves, batches, windows); nothing is written.
    Preview {
        /// What to roll out, where, how.
        #[command(flatten)]
        plan: PlanArgs,
        /// When batch 1 opens (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// Include each batch's machines (with `--output json`).
        #[arg(long)]
        with_machines: bool,
    },
    /// Start a rollout.
    Start {
        /// What to roll out, where, how.
        #[command(flatten)]
        plan: PlanArgs,
        /// Then watch it until it ends (see `rollouts watch`).
        #[arg(long)]
        watch: bool,
        /// How to poll with `--watch`.
        #[command(flatten)]
        poll: WatchArgs,
    },
    /// List rollouts, newest first.
    List {
        /// Only this state (running, paused, halted, canceled, succeeded).
        #[arg(long)]
        state: Option<String>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a rollout's progress by wave and batch.
    Get {
        /// Rollout id.
        id: Uuid,
    },
    /// Follow a rollout with a progress bar until it succeeds (exit 0), halts or is canceled
    /// (exit 1, with the reason).
    Watch {
        /// Rollout id.
        id: Uuid,
        /// How to poll.
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Pause: no new installs start (jobs already queued run).
    Pause {
        /// Rollout id.
        id: Uuid,
    },
    /// Resume a paused or halted rollout.
    Resume {
        /// Rollout id.
        id: Uuid,
    },
    /// Cancel a rollout for good.
    Cancel {
        /// Rollout id.
        id: Uuid,
    },
}

/// What to roll out, to which machines, how.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The release to roll out.
    #[arg(long)]
    pub release: Uuid,
    /// A machine to include (repeatable); with labels or regions, all must match.
    #[arg(long = "machine", value_name = "MACHINE_ID")]
    pub machines: Vec<Uuid>,
    /// Which machines.
    #[command(flatten)]
    pub selector: SelectorArgs,
    /// Largest batch outside availability sets, percent.
    #[arg(long)]
    pub max_batch_percent: Option<u32>,
    /// Failure rate above which the rollout halts, percent.
    #[arg(long)]
    pub failure_threshold_percent: Option<u32>,
    /// Regions that go first, e.g. a canary (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub region_order: Vec<String>,
}

impl PlanArgs {
    /// `{release_id, selector, options}` with only what was given.
    fn body(&self) -> Result<Map<String, Value>, CliError> {
        let mut body = Map::new();
        body.insert("release_id".into(), Value::from(self.release.to_string()));
        let selector = serde_json::to_value(self.selector.selector(&self.machines))
            .map_err(|e| CliError::Input(format!("selector: {e}")))?;
        body.insert("selector".into(), selector);
        let mut options = Map::new();
        if let Some(p) = self.max_batch_percent {
            options.insert("max_batch_percent".into(), Value::from(p));
        }
        if let Some(p) = self.failure_threshold_percent {
            options.insert("failure_threshold_percent".into(), Value::from(p));
        }
        if !self.region_order.is_empty() {
            options.insert("region_order".into(), Value::from(self.region_order.clone()));
        }
        if !options.is_empty() {
            body.insert("options".into(), Value::Object(options));
        }
        Ok(body)
    }
}

/// How `watch` polls.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Seconds between two reads of the rollout.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub interval: u64,
    /// Give up after this many seconds (exit 1); by default watch until it ends.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// Runs a `rollouts` subcommand.
pub async fn run(command: RolloutsCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        RolloutsCommand::Preview { plan, start, with_machines } => {
            let mut body = plan.body()?;
            if let Some(start) = start {
                body.insert("start".into(), Value::from(start));
            }
            let query: Query = vec![("machines", with_machines.to_string())];
            let p = client.post("/v1/rollouts/preview", &query, Some(&Value::Object(body))).await?;
            if out.is_json() {
                return out.json(&p);
            }
            show_plan(out, &p)
        }
        RolloutsCommand::Start { plan, watch, poll } => {
            let body = Value::Object(plan.body()?);
            let r = client.post("/v1/rollouts", &Query::new(), Some(&body)).await?;
            if !watch {
                return show_detail(out, &r);
            }
            let id = r.get("id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok()).ok_or_else(
                || CliError::Decode {
                    url: client.url("/v1/rollouts"),
                    reason: "the answer has no rollout id".into(),
                },
            )?;
            watch_rollout(id, &poll, client, out).await
        }
        RolloutsCommand::List { state, page } => {
            let mut query = Query::new();
            query.extend(state.map(|s| ("state", s)));
            let answer = list(client, "/v1/rollouts", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|r| {
                    vec![
                        text(r, "/id"),
                        text(r, "/release_id"),
                        text(r, "/state"),
                        text(r, "/machine_count"),
                        text(r, "/created_at"),
                        text(r, "/expected_finish"),
                        text(r, "/halted_reason"),
                    ]
                })
                .collect();
            page_table(
                out,
                &["id", "release", "state", "machines", "created", "expected_finish", "halted"],
                &rows,
                &answer,
            )
        }
        RolloutsCommand::Get { id } => {
            let r = client.get(&format!("/v1/rollouts/{id}"), &Query::new()).await?;
            show_detail(out, &r)
        }
        RolloutsCommand::Watch { id, watch } => watch_rollout(id, &watch, client, out).await,
        RolloutsCommand::Pause { id } => transition(client, out, id, "pause").await,
        RolloutsCommand::Resume { id } => transition(client, out, id, "resume").await,
        RolloutsCommand::Cancel { id } => transition(client, out, id, "cancel").await,
    }
}

async fn transition(client: &Client, out: &mut Out, id: Uuid, action: &str) -> Result<(), CliError> {
    let r = client.post(&format!("/v1/rollouts/{id}/{action}"), &Query::new(), None).await?;
    show_detail(out, &r)
}

/// A plan in table form: counts, then its batches.
fn show_plan(out: &mut Out, p: &Value) -> Result<(), CliError> {
    out.fields(&[
        ("release", text(p, "/release_id")),
        ("start", text(p, "/start")),
        ("expected finish", text(p, "/expected_finish")),
        ("deadline", text(p, "/deadline")),
        ("overdue", text(p, "/overdue")),
        ("selected", text(p, "/counts/selected")),
        ("planned", text(p, "/counts/planned")),
        ("unplanned", unplanned(p)),
        ("waves", text(p, "/counts/waves")),
        ("batches", text(p, "/counts/batches")),
    ])?;
    let rows: Vec<Vec<String>> = p
        .get("batches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                text(b, "/index"),
                text(b, "/wave"),
                text(b, "/region"),
                text(b, "/zone"),
                text(b, "/machine_count"),
                text(b, "/planned_start"),
                text(b, "/planned_end"),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.line("")?;
        out.table(&["batch", "wave", "region", "zone", "machines", "planned_start", "planned_end"], &rows)?;
    }
    Ok(())
}

/// `2 (not_eligible=1,no_window=1)`, or `0`.
fn unplanned(p: &Value) -> String {
    let by_reason = text(p, "/counts/unplanned_by_reason");
    match by_reason.as_str() {
        "-" => text(p, "/counts/unplanned"),
        reasons => format!("{} ({reasons})", text(p, "/counts/unplanned")),
    }
}

/// A rollout with its progress in table form (or its JSON).
fn show_detail(out: &mut Out, r: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(r);
    }
    let mut pairs = vec![
        ("rollout", text(r, "/id")),
        ("release", text(r, "/release_id")),
        ("state", text(r, "/state")),
        ("progress", progress_text(r)),
        ("machines", text(r, "/machine_count")),
        ("expected finish", text(r, "/expected_finish")),
        ("deadline", text(r, "/deadline")),
        ("overdue", text(r, "/overdue")),
    ];
    if r.get("halted_reason").is_some_and(|h| !h.is_null()) {
        pairs.push(("halted", one_line(&text(r, "/halted_reason"))));
    }
    out.fields(&pairs)?;
    let rows: Vec<Vec<String>> = batches(r)
        .map(|b| {
            vec![
                text(b, "/index"),
                text(b, "/wave"),
                text(b, "/region"),
                text(b, "/zone"),
                text(b, "/state"),
                format!("{}/{}", finished(b.get("counts")), text(b, "/counts/total")),
                text(b, "/counts/failed"),
                text(b, "/planned_start"),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.line("")?;
        out.table(&["batch", "wave", "region", "zone", "state", "done", "failed", "planned_start"], &rows)?;
    }
    Ok(())
}

/// Every batch of a rollout detail, wave by wave.
fn batches(r: &Value) -> impl Iterator<Item = &Value> {
    r.get("waves")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|w| w.get("batches").and_then(Value::as_array).into_iter().flatten())
}

/// Machines whose install is over (succeeded, failed or canceled) in a `counts` object.
fn finished(counts: Option<&Value>) -> i64 {
    let n = |k: &str| counts.and_then(|c| c.get(k)).and_then(Value::as_i64).unwrap_or(0);
    n("succeeded") + n("failed") + n("canceled")
}

/// `[#####.....]  45%  9/20 machines · 8 succeeded · 1 failed · batch 3/6 · running`.
pub fn progress_text(r: &Value) -> String {
    let counts = r.get("counts");
    let total = counts.and_then(|c| c.get("total")).and_then(Value::as_i64).unwrap_or(0);
    let done = finished(counts);
    let all: Vec<&Value> = batches(r).collect();
    let closed = all
        .iter()
        .filter(|b| matches!(b.get("state").and_then(Value::as_str), Some("succeeded" | "canceled")))
        .count();
    let current = all
        .iter()
        .position(|b| matches!(b.get("state").and_then(Value::as_str), Some("open" | "halted" | "pending")));
    let batch = match current {
        Some(i) => format!("batch {}/{}", i + 1, all.len()),
        None => format!("batch {closed}/{}", all.len()),
    };
    format!(
        "{} {:>3}%  {done}/{total} machines · {} succeeded · {} failed · {batch} · {}",
        bar(done, total, 24),
        percent(done, total),
        text(r, "/counts/succeeded"),
        text(r, "/counts/failed"),
        text(r, "/state"),
    )
}

fn percent(done: i64, total: i64) -> i64 {
    if total <= 0 {
        return 100;
    }
    done.clamp(0, total) * 100 / total
}

/// A bar of `width` cells, `#` for the done part.
pub fn bar(done: i64, total: i64, width: usize) -> String {
    let filled = if total <= 0 { width } else { (done.clamp(0, total) as usize * width) / total as usize };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// Polls the rollout, drawing the progress line on stderr (in place on a terminal, a new line
/// on each change otherwise), until it ends; prints it, and errs unless it succeeded.
async fn watch_rollout(id: Uuid, args: &WatchArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_bar_fills_with_the_share_of_finished_machines() {
        assert_eq!(bar(0, 10, 10), "[..........]");
        assert_eq!(bar(5, 10, 10), "[#####.....]");
        assert_eq!(bar(10, 10, 10), "[##########]");
        assert_eq!(bar(0, 0, 4), "[####]");
    }

    #[test]
    fn the_progress_line_counts_machines_and_names_the_current_batch() {
        let r = json!({
            "state": "running",
            "counts": {"total": 20, "succeeded": 8, "failed": 1, "canceled": 0},
            "waves": [
                {"batches": [{"state": "succeeded"}, {"state": "succeeded"}]},
                {"batches": [{"state": "open"}, {"state": "pending"}]}
            ]
        });
        assert_eq!(
            progress_text(&r),
            "[##########..............]  45%  9/20 machines · 8 succeeded · 1 failed · batch 3/4 · running"
        );
    }
}
