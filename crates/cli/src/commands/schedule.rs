//! `hotpatchctl calendar` (the baseline/hotpatch cycle of a year; `calendar feeds` for the
//! calendar URLs of windows) and `hotpatchctl windows` (a machine's next maintenance windows, or
//! the same as iCalendar).

use chrono::{Datelike, Utc};
use clap::{Args, Subcommand};
use serde_json::Value;
use uuid::Uuid;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{text, Out};

/// Arguments of `calendar`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CalendarArgs {
    /// Instead of the cycle: calendar feeds.
    #[command(subcommand)]
    pub command: Option<CalendarCommand>,
    /// The OS (windows_server_2022, windows_server_2025).
    #[arg(long, default_value = "windows_server_2022")]
    pub os: String,
    /// The year (default: this year).
    #[arg(long)]
    pub year: Option<i32>,
}

/// `calendar` subcommands.
#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Calendar feeds: URLs of a machine's or a configuration's windows that calendar apps read
    /// without a token (create, list, revoke).
    #[command(subcommand)]
    Feeds(super::feeds::FeedsCommand),
}

/// Arguments of `windows`.
#[derive(Debug, Args)]
pub struct WindowsArgs {
    /// Machine id.
    pub id: Uuid,
    /// First instant to look from (RFC 3339; default now).
    #[arg(long)]
    pub from: Option<String>,
    /// How many windows.
    #[arg(long)]
    pub count: Option<u32>,
    /// Print the windows as an iCalendar (text/calendar), whatever `--output` says.
    #[arg(long)]
    pub ics: bool,
}

/// Runs `calendar`.
pub async fn calendar(args: CalendarArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    if let Some(CalendarCommand::Feeds(c)) = args.command {
        return super::feeds::run(c, client, out).await;
    }
    let year = args.year.unwrap_or_else(|| Utc::now().year());
    let query: Query = vec![("os", args.os), ("year", year.to_string())];
    let c = client.get("/v1/calendar", &query).await?;
    if out.is_json() {
        return out.json(&c);
    }
    let rows: Vec<Vec<String>> = c
        .get("months")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let planned = if m.get("planned") == Some(&Value::Bool(false)) { "unplanned" } else { "planned" };
            vec![
                text(m, "/month"),
                text(m, "/kind"),
                planned.to_owned(),
                text(m, "/status"),
                text(m, "/release/kb"),
                text(m, "/reboot_required"),
            ]
        })
        .collect();
    out.line(&format!("{} {}", text(&c, "/os"), text(&c, "/year")))?;
    out.table(&["month", "kind", "planned", "status", "kb", "reboot"], &rows)
}

/// Runs `windows`.
pub async fn windows(args: WindowsArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let mut query = Query::new();
    query.extend(args.from.map(|f| ("from", f)));
    query.extend(args.count.map(|c| ("count", c.to_string())));
    if args.ics {
        let ics = client.get_text(&format!("/v1/machines/{}/calendar.ics", args.id), &query).await?;
        return out.raw(&ics);
    }
    let w = client.get(&format!("/v1/machines/{}/windows", args.id), &query).await?;
    if out.is_json() {
        return out.json(&w);
    }
    let rows: Vec<Vec<String>> = crate::output::items(&w)
        .iter()
        .map(|w| {
            let source = match w.get("maintenance_configuration_id").and_then(Value::as_str) {
                Some(id) => format!("{} {id}", text(w, "/source")),
                None => text(w, "/source"),
            };
            vec![
                text(w, "/start"),
                text(w, "/start_local"),
                text(w, "/end_local"),
                text(w, "/timezone"),
                source,
                text(w, "/notes"),
            ]
        })
        .collect();
    out.table(&["start (utc)", "start (local)", "end (local)", "timezone", "source", "notes"], &rows)
}
