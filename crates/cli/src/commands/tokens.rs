//! `hotpatchctl tokens …`: API tokens (admin) and agent tokens bound to a machine (operator).
//! A token's secret is printed once, when it is created.

use clap::Subcommand;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{list, page_table, PageArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `tokens` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List tokens (never their secrets).
    List {
        /// Only tokens of this role (admin, operator, ci, reader, agent).
        #[arg(long)]
        role: Option<String>,
        /// Only tokens of this kind: api (made with `tokens create`), agent (bound to a
        /// machine), bootstrap (`HOTPATCH_ADMIN_TOKEN`).
        #[arg(long)]
        kind: Option<String>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a token; its secret is shown once.
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// admin, operator, ci or reader.
        #[arg(long)]
        role: String,
        /// When it stops working (RFC 3339); never by default.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Show one token.
    Get {
        /// Token id.
        id: Uuid,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// Token id.
        id: Uuid,
    },
    /// Create the agent token of a machine; its secret is shown once.
    Agent {
        /// Machine id.
        machine: Uuid,
        /// Name (default `agent <machine name>`).
        #[arg(long)]
        name: Option<String>,
        /// When it stops working (RFC 3339); never by default.
        #[arg(long)]
        expires_at: Option<String>,
    },
}

/// Runs a `tokens` subcommand.
pub async fn run(command: TokensCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        TokensCommand::List { role, kind, page } => {
            let mut query = Query::new();
            query.extend(role.map(|r| ("role", r)));
            query.extend(kind.map(|k| ("kind", k)));
            let answer = list(client, "/v1/tokens", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|t| {
                    vec![
                        text(t, "/id"),
                        text(t, "/name"),
                        text(t, "/role"),
                        text(t, "/kind"),
                        text(t, "/machine_id"),
                        text(t, "/created_at"),
                        text(t, "/expires_at"),
                    ]
                })
                .collect();
            page_table(out, &["id", "name", "role", "kind", "machine", "created", "expires"], &rows, &answer)
        }
        TokensCommand::Create { name, role, expires_at } => {
            let mut body = Map::new();
            body.insert("name".into(), Value::from(name));
            body.insert("role".into(), Value::from(role));
            if let Some(at) = expires_at {
                body.insert("expires_at".into(), Value::from(at));
            }
            let t = client.post("/v1/tokens", &Query::new(), Some(&Value::Object(body))).await?;
            created(out, &t)
        }
        TokensCommand::Get { id } => {
            let t = client.get(&format!("/v1/tokens/{id}"), &Query::new()).await?;
            if out.is_json() {
                return out.json(&t);
            }
            out.fields(&[
                ("id", text(&t, "/id")),
                ("name", text(&t, "/name")),
                ("role", text(&t, "/role")),
                ("machine", text(&t, "/machine_id")),
                ("bootstrap", text(&t, "/bootstrap")),
                ("created", text(&t, "/created_at")),
                ("expires", text(&t, "/expires_at")),
            ])
        }
        TokensCommand::Revoke { id } => {
            let answer = client.delete(&format!("/v1/tokens/{id}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("revoked token {id}"))
        }
        TokensCommand::Agent { machine, name, expires_at } => {
            let mut body = Map::new();
            body.extend(name.map(|n| ("name".to_owned(), Value::from(n))));
            body.extend(expires_at.map(|at| ("expires_at".to_owned(), Value::from(at))));
            let path = format!("/v1/machines/{machine}/agent-token");
            let t = client.post(&path, &Query::new(), Some(&Value::Object(body))).await?;
            created(out, &t)
        }
    }
}

/// A new token: its fields, then the secret with the reminder that it is shown once.
fn created(out: &mut Out, t: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(t);
    }
    out.fields(&[
        ("id", text(t, "/id")),
        ("name", text(t, "/name")),
        ("role", text(t, "/role")),
        ("machine", text(t, "/machine_id")),
        ("expires", text(t, "/expires_at")),
        ("token", text(t, "/token")),
    ])?;
    out.note("the token is shown once: store it now");
    Ok(())
}
