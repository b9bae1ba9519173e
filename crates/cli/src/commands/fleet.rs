//! `hotpatchctl fleet summary`: the fleet counted by hotpatch status, compliance, reboot pending
//! and overdue installs, as a whole and by region, OS or label, with the year's reboots.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{text, Out};

/// `fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Counts of the fleet (as each machine's patch status says), with this year's reboots.
    Summary(SummaryArgs),
}

/// Arguments of `fleet summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Also count each group: `region`, `os` or `label:<key>`.
    #[arg(long)]
    pub group_by: Option<String>,
    /// Count at another instant (RFC 3339; default now).
    #[arg(long)]
    pub at: Option<String>,
}

/// Runs a `fleet` subcommand.
pub async fn run(command: FleetCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let FleetCommand::Summary(args) = command;
    let mut query = Query::new();
    query.extend(args.group_by.map(|g| ("group_by", g)));
    query.extend(args.at.map(|a| ("at", a)));
    let s = client.get("/v1/fleet/summary", &query).await?;
    if out.is_json() {
        return out.json(&s);
    }
    let mut rows = vec![counts_row("all", &s)];
    for g in s.get("groups").and_then(Value::as_array).into_iter().flatten() {
        rows.push(counts_row(&text(g, "/key"), g));
    }
    out.table(
        &[
            "group",
            "machines",
            "hotpatch status",
            "compliance",
            "reboot pending",
            "overdue",
            "reboots",
            "avoided",
        ],
        &rows,
    )?;
    out.line("")?;
    out.fields(&[
        ("year", text(&s, "/reboots/year")),
        ("reboots so far", text(&s, "/reboots/this_year")),
        ("on monthly CUs", text(&s, "/reboots/monthly_cumulative")),
        ("avoided so far", text(&s, "/reboots/avoided")),
        ("projected year", text(&s, "/reboots/projected_year")),
        ("projected on CUs", text(&s, "/reboots/projected_monthly_cumulative")),
        ("projected avoided", text(&s, "/reboots/projected_avoided")),
    ])
}

/// One line of counts: the whole fleet or a group.
fn counts_row(name: &str, c: &Value) -> Vec<String> {
    vec![
        name.to_owned(),
        text(c, "/machines"),
        text(c, "/hotpatch_status"),
        text(c, "/compliance"),
        text(c, "/reboot_pending"),
        text(c, "/overdue"),
        text(c, "/reboots/this_year"),
        text(c, "/reboots/avoided"),
    ]
}
