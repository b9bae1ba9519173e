//! `hotpatchctl rollouts …`: availability-first rollouts of a release. Preview the plan, start
//! one, list and show them, watch one with a progress bar until it ends, pause, resume, cancel.
//!
//! How a plan and a rollout are printed (with the progress line) is in `show.rs`, the polling of
//! `watch` in `watch.rs`.

mod show;
mod watch;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use show::{progress_counts, progress_text};

use super::{list, page_table, PageArgs, SelectorArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};
use show::{show_detail, show_plan};
use watch::watch_rollout;

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
            // The id first, so that a watch cut short (Ctrl-C, a CI step's timeout) still says
            // which rollout runs on: stdout in text, stderr when stdout must stay one JSON value.
            let started = format!("rollout {id} started");
            if out.is_json() {
                out.note(&started);
            } else {
                out.line(&started)?;
            }
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
