//! `hotpatchctl maintenance …`: maintenance configurations (schedules and the machines they
//! apply to), with their next windows and the DST warnings the server gives on a write.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;
use uuid::Uuid;

use super::{list, page_table, read_json_file, PageArgs};
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{display, items, text, Out};

/// `maintenance` subcommands.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// List configurations.
    List {
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a configuration and its next windows.
    Get {
        /// Configuration id.
        id: Uuid,
        /// How many windows to show.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        windows: u32,
    },
    /// Create a configuration from a JSON file (`-` for stdin) in the API's form (DESIGN §3
    /// "Maintenance configuration"); prints it with the windows a DST change affects.
    Create {
        /// The configuration, as JSON.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Change a configuration: the JSON file's fields replace the stored ones (JSON merge
    /// patch; `null` resets one to its default). Prints DST warnings as `create` does.
    Update {
        /// Configuration id.
        id: Uuid,
        /// The fields to change, as JSON.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Delete a configuration: its machines fall back to their default off-peak window.
    Delete {
        /// Configuration id.
        id: Uuid,
    },
    /// A configuration's next windows (one without a zone of its own on the UTC clock).
    Windows(WindowsArgs),
}

/// Arguments of `maintenance windows`.
#[derive(Debug, Args)]
pub struct WindowsArgs {
    /// Configuration id.
    pub id: Uuid,
    /// First instant to look from (RFC 3339; default now).
    #[arg(long)]
    pub from: Option<String>,
    /// How many windows.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: Option<u32>,
    /// Print the windows as an iCalendar (text/calendar), whatever `--output` says.
    #[arg(long)]
    pub ics: bool,
}

/// Runs a `maintenance` subcommand.
pub async fn run(command: MaintenanceCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    const BASE: &str = "/v1/maintenance-configurations";
    match command {
        MaintenanceCommand::List { page } => {
            let answer = list(client, BASE, Query::new(), &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|c| {
                    vec![
                        text(c, "/id"),
                        text(c, "/name"),
                        recurrence(c),
                        text(c, "/start_time"),
                        text(c, "/duration"),
                        text(c, "/timezone"),
                        text(c, "/scope"),
                    ]
                })
                .collect();
            page_table(
                out,
                &["id", "name", "recurrence", "start", "duration", "timezone", "scope"],
                &rows,
                &answer,
            )
        }
        MaintenanceCommand::Get { id, windows } => {
            let c = client.get(&format!("{BASE}/{id}"), &Query::new()).await?;
            let query: Query = vec![("count", windows.to_string())];
            let w = client.get(&format!("{BASE}/{id}/windows"), &query).await?;
            if out.is_json() {
                let mut shown = c;
                if let Value::Object(map) = &mut shown {
                    map.insert("next_windows".into(), w.get("items").cloned().unwrap_or(Value::Null));
                }
                return out.json(&shown);
            }
            show(out, &c)?;
            out.line("")?;
            windows_table(out, &w)
        }
        MaintenanceCommand::Create { file } => {
            let body = read_json_file(&file)?;
            let c = client.post(BASE, &Query::new(), Some(&body)).await?;
            written(out, &c)
        }
        MaintenanceCommand::Update { id, file } => {
            let body = read_json_file(&file)?;
            let c = client.patch(&format!("{BASE}/{id}"), &body).await?;
            written(out, &c)
        }
        MaintenanceCommand::Delete { id } => {
            let answer = client.delete(&format!("{BASE}/{id}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("deleted maintenance configuration {id}"))
        }
        MaintenanceCommand::Windows(args) => {
            let mut query = Query::new();
            query.extend(args.from.map(|f| ("from", f)));
            query.extend(args.count.map(|c| ("count", c.to_string())));
            if args.ics {
                let ics = client.get_text(&format!("{BASE}/{}/calendar.ics", args.id), &query).await?;
                return out.raw(&ics);
            }
            let w = client.get(&format!("{BASE}/{}/windows", args.id), &query).await?;
            if out.is_json() {
                return out.json(&w);
            }
            windows_table(out, &w)
        }
    }
}

/// `weekly every 1 on saturday`, `monthly 2nd tuesday +4 days`: the recurrence in a few words.
fn recurrence(c: &Value) -> String {
    let r = c.get("recurrence").unwrap_or(&Value::Null);
    let mut words = vec![text(r, "/frequency")];
    if let Some(n) = r.get("interval").and_then(Value::as_i64).filter(|n| *n > 1) {
        words.push(format!("every {n}"));
    }
    if r.get("days_of_week").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
        words.push(format!("on {}", text(r, "/days_of_week")));
    }
    if r.get("day_of_month").is_some_and(|d| !d.is_null()) {
        words.push(format!("day {}", text(r, "/day_of_month")));
    }
    if r.get("nth_weekday").is_some_and(|d| !d.is_null()) {
        words.push(format!("week {} {}", text(r, "/nth_weekday/week"), text(r, "/nth_weekday/day")));
    }
    if let Some(n) = r.get("offset_days").and_then(Value::as_i64).filter(|n| *n != 0) {
        words.push(format!("{n:+} days"));
    }
    words.join(" ")
}

/// A configuration as `key  value` lines.
fn show(out: &mut Out, c: &Value) -> Result<(), CliError> {
    out.fields(&[
        ("id", text(c, "/id")),
        ("name", text(c, "/name")),
        ("recurrence", recurrence(c)),
        ("start", text(c, "/start_time")),
        ("duration", text(c, "/duration")),
        ("timezone", text(c, "/timezone")),
        ("reboot", text(c, "/reboot")),
        ("classifications", text(c, "/classifications")),
        ("kb include", text(c, "/kb_include")),
        ("kb exclude", text(c, "/kb_exclude")),
        ("blackouts", text(c, "/blackouts")),
        ("scope", text(c, "/scope")),
        ("created", text(c, "/created_at")),
        ("updated", text(c, "/updated_at")),
    ])
}

/// A created or changed configuration, then its DST warnings (on stderr in a table, where a
/// person reads them; in the JSON as the server sent them).
fn written(out: &mut Out, c: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(c);
    }
    show(out, c)?;
    for w in c.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        out.note(&format!("warning: {}", one_line(&display(w))));
    }
    Ok(())
}

/// Windows in a table (the same columns as `hotpatchctl windows`).
pub fn windows_table(out: &mut Out, w: &Value) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = items(w)
        .iter()
        .map(|w| {
            vec![
                text(w, "/start"),
                text(w, "/start_local"),
                text(w, "/end_local"),
                text(w, "/timezone"),
                text(w, "/notes"),
            ]
        })
        .collect();
    out.table(&["start (utc)", "start (local)", "end (local)", "timezone", "notes"], &rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_recurrence_reads_as_a_few_words() {
        let weekly = json!({"recurrence": {"frequency": "weekly", "interval": 2, "days_of_week": ["saturday", "sunday"]}});
        assert_eq!(recurrence(&weekly), "weekly every 2 on saturday,sunday");
        let monthly = json!({"recurrence": {"frequency": "monthly", "interval": 1,
            "nth_weekday": {"week": 2, "day": "tuesday"}, "offset_days": 4}});
        assert_eq!(recurrence(&monthly), "monthly week 2 tuesday +4 days");
        assert_eq!(recurrence(&json!({"recurrence": {"frequency": "daily"}})), "daily");
    }
}
