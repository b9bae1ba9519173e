//! `hotpatchctl calendar feeds …`: read-only calendar URLs of a machine's or a maintenance
//! configuration's windows, for calendar apps (which cannot send a token). A feed's URL is shown
//! once, when it is made; revoking the feed makes it answer 404.

use clap::{ArgGroup, Subcommand};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{list, page_table, PageArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `calendar feeds` subcommands.
#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Make a feed of a machine's or a configuration's windows; prints its URL (shown once).
    #[command(group(ArgGroup::new("subject").required(true).args(["machine", "configuration"])))]
    Create {
        /// Machine id.
        #[arg(long)]
        machine: Option<Uuid>,
        /// Maintenance configuration id.
        #[arg(long)]
        configuration: Option<Uuid>,
    },
    /// List your feeds (an admin's: every feed), without their URLs.
    List {
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke a feed: its URL stops working at once.
    Revoke {
        /// Feed id.
        id: Uuid,
    },
}

/// Runs a `calendar feeds` subcommand.
pub async fn run(command: FeedsCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        FeedsCommand::Create { machine, configuration } => {
            let body = match (machine, configuration) {
                (Some(m), _) => json!({ "machine_id": m }),
                (None, c) => json!({ "maintenance_configuration_id": c }),
            };
            let mut f = client.post("/v1/calendar-feeds", &Query::new(), Some(&body)).await?;
            // The server says where relative to itself; a calendar app needs the whole URL.
            if let Some(url) = f.get("url").and_then(Value::as_str).map(|u| client.url(u)) {
                f["url"] = Value::from(url);
            }
            if out.is_json() {
                return out.json(&f);
            }
            out.fields(&[
                ("id", text(&f, "/id")),
                ("machine", text(&f, "/machine_id")),
                ("configuration", text(&f, "/maintenance_configuration_id")),
                ("url", text(&f, "/url")),
            ])?;
            out.note("the URL is shown once and works without a token: share it only with its readers");
            Ok(())
        }
        FeedsCommand::List { page } => {
            let answer = list(client, "/v1/calendar-feeds", Query::new(), &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|f| {
                    vec![
                        text(f, "/id"),
                        text(f, "/machine_id"),
                        text(f, "/maintenance_configuration_id"),
                        text(f, "/token_id"),
                        text(f, "/created_at"),
                    ]
                })
                .collect();
            page_table(out, &["id", "machine", "configuration", "made by token", "created"], &rows, &answer)
        }
        FeedsCommand::Revoke { id } => {
            let answer = client.delete(&format!("/v1/calendar-feeds/{id}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("revoked calendar feed {id}"))
        }
    }
}
