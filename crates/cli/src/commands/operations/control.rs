//! `hotpatchctl operations list | cancel`: the operations of the fleet, newest first, and
//! canceling one (its queued jobs; running ones finish, which the server's warning says).

use clap::Subcommand;
use uuid::Uuid;

use super::super::{list, page_table, PageArgs};
use crate::client::{Client, Query};
use crate::error::{one_line, CliError};
use crate::output::{display, items, text, Out};

/// `operations` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperationsCommand {
    /// List operations, newest first.
    List {
        /// Only this kind (assess, install, rollback).
        #[arg(long)]
        kind: Option<String>,
        /// Only this status (queued, running, succeeded, failed, canceled).
        #[arg(long)]
        status: Option<String>,
        /// Only those started by this token.
        #[arg(long, value_name = "TOKEN_ID")]
        created_by: Option<Uuid>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Cancel an operation: its queued jobs end `canceled`; running ones finish.
    Cancel {
        /// Operation id.
        id: Uuid,
    },
}

/// Runs an `operations` subcommand.
pub async fn run(command: OperationsCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        OperationsCommand::List { kind, status, created_by, page } => {
            let mut query = Query::new();
            query.extend(kind.map(|k| ("kind", k)));
            query.extend(status.map(|s| ("status", s)));
            query.extend(created_by.map(|c| ("created_by", c.to_string())));
            let answer = list(client, "/v1/operations", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|o| {
                    vec![
                        text(o, "/id"),
                        text(o, "/kind"),
                        text(o, "/status"),
                        format!("{}/{}", text(o, "/machines/succeeded"), text(o, "/machines/total")),
                        text(o, "/machines/failed"),
                        text(o, "/machines/pending"),
                        text(o, "/created_at"),
                    ]
                })
                .collect();
            page_table(
                out,
                &["id", "kind", "status", "succeeded", "failed", "pending", "created"],
                &rows,
                &answer,
            )
        }
        OperationsCommand::Cancel { id } => {
            let op = client.post(&format!("/v1/operations/{id}/cancel"), &Query::new(), None).await?;
            for w in op.get("warnings").and_then(serde_json::Value::as_array).into_iter().flatten() {
                out.note(&format!("warning: {}", one_line(&display(w))));
            }
            if out.is_json() {
                return out.json(&op);
            }
            out.line(&format!("operation {id}: {}", text(&op, "/status")))
        }
    }
}
