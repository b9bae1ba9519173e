//! The commands, one module per group, and the arguments several of them share (selectors,
//! paging, waiting).

pub mod events;
pub mod feeds;
pub mod fleet;
pub mod machines;
pub mod maintenance;
pub mod operations;
pub mod regions;
pub mod releases;
pub mod rollouts;
pub mod schedule;
pub mod status;
pub mod tokens;
pub mod webhooks;

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use hotpatch_domain::operation::Selector;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::Out;

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The fleet: list, show, import, delete machines.
    #[command(subcommand)]
    Machines(machines::MachinesCommand),
    /// A machine's patch status (hotpatch, cycle, recommended updates, reboot, agent, health).
    Status(status::StatusArgs),
    /// Assess now: one machine, several, or those a selector names. `--wait` exits 0 only when
    /// every assessment succeeded.
    Assess(operations::AssessArgs),
    /// Install updates now on one machine (outside availability-first; may reboot).
    Install(operations::InstallArgs),
    /// Roll a machine back: uninstall the latest update, install the last baseline, reboot.
    Rollback(operations::RollbackArgs),
    /// Follow an operation (assess, install, rollback) until it is over.
    Operation(operations::OperationArgs),
    /// Operations: list (newest first), cancel.
    #[command(subcommand)]
    Operations(operations::OperationsCommand),
    /// The release catalog: list, show, publish, import a catalog file.
    #[command(subcommand)]
    Releases(releases::ReleasesCommand),
    /// Twelve months of the baseline/hotpatch cycle of an OS; `calendar feeds` for calendar URLs.
    Calendar(schedule::CalendarArgs),
    /// A machine's next maintenance windows (`--ics` for iCalendar).
    Windows(schedule::WindowsArgs),
    /// Maintenance configurations: list, get (with next windows), create, update, delete, windows.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Availability-first rollouts: preview, start, list, get, watch, pause, resume, cancel.
    #[command(subcommand)]
    Rollouts(rollouts::RolloutsCommand),
    /// API tokens: list, create, show, revoke; agent tokens for machines.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Webhooks: list, get, create, update, delete, enable, deliveries, test, redeliver.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Regions (Windows Server 2025 Azure Edition availability) and their geo-pairs.
    #[command(subcommand)]
    Regions(regions::RegionsCommand),
    /// The fleet counted by hotpatch status, compliance, reboots.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// The change feed: `events tail` follows it.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Print a shell completion script (needs no server), e.g.
    /// `hotpatchctl completions bash > /etc/bash_completion.d/hotpatchctl`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs one command.
pub async fn run(command: Command, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        Command::Machines(c) => machines::run(c, client, out).await,
        Command::Status(a) => status::run(a, client, out).await,
        Command::Assess(a) => operations::assess(a, client, out).await,
        Command::Install(a) => operations::install(a, client, out).await,
        Command::Rollback(a) => operations::rollback(a, client, out).await,
        Command::Operation(a) => operations::follow(a, client, out).await,
        Command::Operations(c) => operations::control(c, client, out).await,
        Command::Releases(c) => releases::run(c, client, out).await,
        Command::Calendar(a) => schedule::calendar(a, client, out).await,
        Command::Windows(a) => schedule::windows(a, client, out).await,
        Command::Rollouts(c) => rollouts::run(c, client, out).await,
        Command::Tokens(c) => tokens::run(c, client, out).await,
        Command::Maintenance(c) => maintenance::run(c, client, out).await,
        Command::Webhooks(c) => webhooks::run(c, client, out).await,
        Command::Regions(c) => regions::run(c, client, out).await,
        Command::Fleet(c) => fleet::run(c, client, out).await,
        Command::Events(c) => events::run(c, client, out).await,
        Command::Completions { shell } => completions(shell, out),
    }
}

/// Writes the completion script of `shell` for the whole command line.
pub fn completions(shell: clap_complete::Shell, out: &mut Out) -> Result<(), CliError> {
    let mut command = <crate::Cli as clap::CommandFactory>::command();
    // Into memory first: `generate` panics when its writer fails (`… | head` closes the pipe),
    // where a failed write must be an error like any other output's.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "hotpatchctl", &mut script);
    out.writer().write_all(&script)?;
    out.flush()
}

/// Which machines (bulk assess, rollouts); every given part must match.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectorArgs {
    /// Machines carrying this label, `key=value` (repeatable: all must match).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Machines in this region (repeatable: any of them).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
}

impl SelectorArgs {
    /// Whether no part was given.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.regions.is_empty()
    }

    /// The selector these arguments and `machine_ids` (when any) name.
    pub fn selector(&self, machine_ids: &[Uuid]) -> Selector {
        Selector {
            machine_ids: (!machine_ids.is_empty()).then(|| machine_ids.to_vec()),
            labels: (!self.labels.is_empty())
                .then(|| self.labels.iter().cloned().collect::<BTreeMap<_, _>>()),
            regions: (!self.regions.is_empty()).then(|| self.regions.clone()),
        }
    }
}

/// `key=value` (or `key:value`, the form the list filter uses).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) =
        s.split_once('=').or_else(|| s.split_once(':')).ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("'{s}' has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Paging of list commands.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Page size (1–1000).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: Option<u16>,
    /// `next_cursor` of the previous page.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow `next_cursor` to the end and print every item (as one `items` list with `--output json`).
    #[arg(long)]
    pub all: bool,
}

/// Reads a list: one page, or with `--all` every page joined into one `{items, next_cursor: null}`.
pub async fn list(client: &Client, path: &str, mut query: Query, page: &PageArgs) -> Result<Value, CliError> {
    if let Some(limit) = page.limit {
        query.push(("limit", limit.to_string()));
    } else if page.all {
        query.push(("limit", "1000".to_owned()));
    }
    if let Some(cursor) = &page.cursor {
        query.push(("cursor", cursor.clone()));
    }
    let first = client.get(path, &query).await?;
    if !page.all {
        return Ok(first);
    }
    let mut items: Vec<Value> = crate::output::items(&first).to_vec();
    let mut next = first.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
    while let Some(cursor) = next {
        let mut q = query.clone();
        q.push(("cursor", cursor));
        let page = client.get(path, &q).await?;
        items.extend_from_slice(crate::output::items(&page));
        next = page.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
    }
    Ok(json!({ "items": items, "next_cursor": null }))
}

/// Prints a page of a list as a table, then, when there is a next page, how to get it (stderr).
pub fn page_table(
    out: &mut Out,
    headers: &[&str],
    rows: &[Vec<String>],
    page: &Value,
) -> Result<(), CliError> {
    out.table(headers, rows)?;
    if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
        out.note(&format!("more: --cursor {next} (or --all)"));
    }
    Ok(())
}

/// Reads a JSON file (`-` for stdin).
pub fn read_json_file(path: &std::path::Path) -> Result<Value, CliError> {
    let text = read_file(path)?;
    serde_json::from_str(&text)
        .map_err(|e| CliError::Input(format!("{} is not valid JSON: {e}", path.display())))
}

/// Reads a text file (`-` for stdin).
pub fn read_file(path: &std::path::Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|source| CliError::Read { path: path.to_owned(), source });
    }
    std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.to_owned(), source })
}

/// A fresh `Idempotency-Key` for a request that starts something, unless one was given: the
/// client retries such a request after a network failure without starting it twice.
pub fn idempotency_key(given: Option<&str>) -> String {
    given.map(str::to_owned).unwrap_or_else(|| format!("hotpatchctl-{}", Uuid::new_v4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_equals_value_or_key_colon_value() {
        assert_eq!(parse_label("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_label("env:prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_label("team=a:b"), Ok(("team".into(), "a:b".into())));
        assert!(parse_label("env").is_err());
        assert!(parse_label("=x").is_err());
    }

    #[test]
    fn a_selector_carries_only_the_parts_given() {
        let args = SelectorArgs { labels: vec![("env".into(), "prod".into())], regions: vec![] };
        let s = serde_json::to_value(args.selector(&[])).unwrap();
        assert_eq!(s, json!({ "labels": { "env": "prod" } }));
        assert!(SelectorArgs::default().is_empty());
    }
}
