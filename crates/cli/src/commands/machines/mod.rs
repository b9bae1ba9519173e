//! `hotpatchctl machines …`: list, show, import (JSON or CSV) and delete machines. Reading an
//! import file (JSON or CSV) is in `import.rs`.

mod import;

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use serde_json::Value;
use uuid::Uuid;

pub use import::{machines_from_csv, parse_csv, read_machines};

use super::{list, page_table, parse_label, PageArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `machines` subcommands.
#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// List machines, filtered.
    List {
        /// Only this region.
        #[arg(long)]
        region: Option<String>,
        /// Only this OS (windows_server_2022, windows_server_2025).
        #[arg(long)]
        os: Option<String>,
        /// Only machines with this label, `key=value` (repeatable: all must match).
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Only this hotpatch status (enabled, disabled, not_eligible, needs_baseline).
        #[arg(long)]
        hotpatch_status: Option<String>,
        /// Only this name; with a trailing `*`, names beginning with the rest (`web-*`).
        #[arg(long)]
        name: Option<String>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one machine with its eligibility, by id or by name.
    Get {
        /// Machine id or name.
        #[arg(value_name = "NAME_OR_ID")]
        machine: String,
    },
    /// Register many machines at once, all or nothing (at most 10,000).
    ///
    /// JSON: an array of machines as `POST /v1/machines` takes them. CSV: a header line naming the
    /// fields (`name,platform,os,region,timezone,hotpatch_enabled,…`); nested fields are dotted
    /// (`image.publisher`, `image.offer`, `image.sku`, `scale_set.name`,
    /// `scale_set.orchestration_mode`, `labels.env`), `labels` may also hold `k=v;k2=v2`; empty
    /// cells are left out.
    Import {
        /// The file (`-` for stdin).
        file: PathBuf,
        /// Its format; by default from the extension (`.csv` is CSV, anything else JSON).
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
    },
    /// Delete a machine (its jobs and tokens go with it).
    Delete {
        /// Machine id.
        id: Uuid,
    },
}

/// Formats `machines import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// A JSON array of machines.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// Runs a `machines` subcommand.
pub async fn run(command: MachinesCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        MachinesCommand::List { region, os, labels, hotpatch_status, name, page } => {
            let mut query = Query::new();
            query.extend(name.map(|n| ("name", n)));
            query.extend(region.map(|r| ("region", r)));
            query.extend(os.map(|o| ("os", o)));
            query.extend(hotpatch_status.map(|s| ("hotpatch_status", s)));
            query.extend(labels.into_iter().map(|(k, v)| ("label", format!("{k}:{v}"))));
            let answer = list(client, "/v1/machines", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|m| {
                    vec![
                        text(m, "/id"),
                        text(m, "/name"),
                        text(m, "/os"),
                        text(m, "/region"),
                        text(m, "/hotpatch_status"),
                        text(m, "/eligibility/eligible"),
                        text(m, "/labels"),
                    ]
                })
                .collect();
            page_table(out, &["id", "name", "os", "region", "hotpatch", "eligible", "labels"], &rows, &answer)
        }
        MachinesCommand::Get { machine } => {
            let id = resolve(client, &machine).await?;
            let m = client.get(&format!("/v1/machines/{id}"), &Query::new()).await?;
            if out.is_json() {
                return out.json(&m);
            }
            show(out, &m)
        }
        MachinesCommand::Import { file, format } => {
            let machines = read_machines(&file, format)?;
            let answer = client.post("/v1/machines/import", &Query::new(), Some(&machines)).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|m| {
                    vec![text(m, "/id"), text(m, "/name"), text(m, "/hotpatch_status"), text(m, "/eligible")]
                })
                .collect();
            out.table(&["id", "name", "hotpatch", "eligible"], &rows)?;
            out.line(&format!("imported {} machines", text(&answer, "/imported")))
        }
        MachinesCommand::Delete { id } => {
            let answer = client.delete(&format!("/v1/machines/{id}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("deleted machine {id}"))
        }
    }
}

/// The id of the machine named `machine` (a machine id is taken as it is; a name is looked up
/// with `GET /v1/machines?name=`).
pub async fn resolve(client: &Client, machine: &str) -> Result<Uuid, CliError> {
    if let Ok(id) = machine.parse::<Uuid>() {
        return Ok(id);
    }
    if machine.ends_with('*') {
        return Err(CliError::Input(format!(
            "'{machine}' is a pattern; `machines get` takes one name or id (list with `machines list --name`)"
        )));
    }
    let query: Query = vec![("name", machine.to_owned()), ("limit", "1".to_owned())];
    let answer = client.get("/v1/machines", &query).await?;
    let id = items(&answer).first().and_then(|m| m.get("id")).and_then(Value::as_str);
    match id.map(str::parse::<Uuid>) {
        Some(Ok(id)) => Ok(id),
        Some(Err(e)) => {
            Err(CliError::Decode { url: "/v1/machines".to_owned(), reason: format!("machine id: {e}") })
        }
        // As the server answers an unknown id: the same exit code either way.
        None => Err(CliError::Problem {
            status: 404,
            code: "not_found".to_owned(),
            detail: format!("no machine named '{machine}'"),
        }),
    }
}

/// One machine as `key  value` lines.
fn show(out: &mut Out, m: &Value) -> Result<(), CliError> {
    let image = match m.get("image") {
        Some(Value::Object(_)) => {
            format!("{}/{}/{}", text(m, "/image/publisher"), text(m, "/image/offer"), text(m, "/image/sku"))
        }
        _ => "-".to_owned(),
    };
    let reasons: Vec<String> = m
        .pointer("/eligibility/reasons")
        .and_then(Value::as_array)
        .map(|rs| rs.iter().map(|r| format!("{}: {}", text(r, "/code"), text(r, "/message"))).collect())
        .unwrap_or_default();
    let mut pairs = vec![
        ("id", text(m, "/id")),
        ("name", text(m, "/name")),
        ("platform", text(m, "/platform")),
        ("os", text(m, "/os")),
        ("image", image),
        ("os build", text(m, "/os_build")),
        ("region", text(m, "/region")),
        ("zone", text(m, "/availability_zone")),
        ("availability set", text(m, "/availability_set")),
        ("timezone", text(m, "/timezone")),
        ("orchestration", text(m, "/patch_orchestration")),
        ("hotpatch enabled", text(m, "/hotpatch_enabled")),
        ("hotpatch status", text(m, "/hotpatch_status")),
        ("eligible", text(m, "/eligibility/eligible")),
        ("preview", text(m, "/eligibility/preview")),
        ("labels", text(m, "/labels")),
        ("created", text(m, "/created_at")),
    ];
    if m.get("enrollment").is_some_and(|e| !e.is_null()) {
        pairs.push(("enrollment", text(m, "/enrollment")));
    }
    for r in &reasons {
        pairs.push(("not eligible", r.clone()));
    }
    out.fields(&pairs)
}
