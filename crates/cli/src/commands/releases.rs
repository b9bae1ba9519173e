//! `hotpatchctl releases …`: the release catalog (baselines and hotpatches) and the updates
//! hotpatch does not cover: list, show, publish one, import a catalog file in order.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use hotpatch_domain::{Kb, Month, OsBuild, OsVersion, ReleaseKind, ReleaseSpec};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{list, page_table, read_json_file, PageArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `releases` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// List the catalog in publication order.
    List {
        /// Only this OS (windows_server_2022, windows_server_2025).
        #[arg(long)]
        os: Option<String>,
        /// Only this kind (baseline, hotpatch).
        #[arg(long)]
        kind: Option<String>,
        /// From this month, YYYY-MM.
        #[arg(long)]
        from: Option<String>,
        /// Up to this month, YYYY-MM.
        #[arg(long)]
        to: Option<String>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one release.
    Get {
        /// Release id.
        id: Uuid,
    },
    /// Publish one release, from flags or from a JSON file (`POST /v1/releases` body).
    Publish(PublishArgs),
    /// Import a catalog file in its order: `{"releases": [...], "updates": [...]}` (e.g.
    /// deploy/catalog/sample.json) or an array of releases. What is already in the catalog
    /// (409) is skipped, so an import can be repeated.
    Import {
        /// The catalog file (`-` for stdin).
        file: PathBuf,
    },
    /// List the updates hotpatch does not cover (non-security, .NET, drivers, …).
    Updates {
        /// Only this OS (also lists updates for every OS).
        #[arg(long)]
        os: Option<String>,
        /// Only this classification.
        #[arg(long)]
        classification: Option<String>,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
}

/// Arguments of `releases publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The release as JSON (instead of the flags).
    #[arg(long, conflicts_with_all = ["os", "kind", "month", "kb", "build", "released_at", "unplanned"])]
    pub file: Option<PathBuf>,
    /// The OS it is for.
    #[arg(long)]
    pub os: Option<OsVersion>,
    /// baseline or hotpatch.
    #[arg(long)]
    pub kind: Option<ReleaseKind>,
    /// Its month, YYYY-MM.
    #[arg(long)]
    pub month: Option<Month>,
    /// Its KB number, e.g. KB5034439.
    #[arg(long)]
    pub kb: Option<Kb>,
    /// The OS build it brings, e.g. 20348.2227.
    #[arg(long)]
    pub build: Option<OsBuild>,
    /// When it was released (RFC 3339).
    #[arg(long)]
    pub released_at: Option<DateTime<Utc>>,
    /// An unplanned baseline (replaces that month's hotpatch).
    #[arg(long)]
    pub unplanned: bool,
}

impl PublishArgs {
    /// The body to publish.
    fn body(self) -> Result<Value, CliError> {
        if let Some(file) = &self.file {
            return read_json_file(file);
        }
        let missing: Vec<&str> = [
            ("--os", self.os.is_none()),
            ("--kind", self.kind.is_none()),
            ("--month", self.month.is_none()),
            ("--kb", self.kb.is_none()),
            ("--build", self.build.is_none()),
            ("--released-at", self.released_at.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        let (Some(os), Some(kind), Some(month), Some(kb), Some(build), Some(released_at)) =
            (self.os, self.kind, self.month, self.kb, self.build, self.released_at)
        else {
            return Err(CliError::Input(format!("publish needs --file or {}", missing.join(", "))));
        };
        let spec = ReleaseSpec { os, kind, planned: !self.unplanned, month, kb, build, released_at };
        serde_json::to_value(spec).map_err(|e| CliError::Input(format!("release: {e}")))
    }
}

/// Runs a `releases` subcommand.
pub async fn run(command: ReleasesCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        ReleasesCommand::List { os, kind, from, to, page } => {
            let mut query = Query::new();
            query.extend(os.map(|v| ("os", v)));
            query.extend(kind.map(|v| ("kind", v)));
            query.extend(from.map(|v| ("from", v)));
            query.extend(to.map(|v| ("to", v)));
            let answer = list(client, "/v1/releases", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer).iter().map(release_row).collect();
            page_table(
                out,
                &["id", "os", "kind", "planned", "month", "kb", "build", "superseded_by"],
                &rows,
                &answer,
            )
        }
        ReleasesCommand::Get { id } => {
            let r = client.get(&format!("/v1/releases/{id}"), &Query::new()).await?;
            if out.is_json() {
                return out.json(&r);
            }
            out.fields(&[
                ("id", text(&r, "/id")),
                ("os", text(&r, "/os")),
                ("kind", text(&r, "/kind")),
                ("planned", text(&r, "/planned")),
                ("month", text(&r, "/month")),
                ("kb", text(&r, "/kb")),
                ("build", text(&r, "/build")),
                ("released", text(&r, "/released_at")),
                ("reboot required", text(&r, "/reboot_required")),
                ("superseded by", text(&r, "/superseded_by")),
            ])
        }
        ReleasesCommand::Publish(args) => {
            let body = args.body()?;
            let r = client.post("/v1/releases", &Query::new(), Some(&body)).await?;
            if out.is_json() {
                return out.json(&r);
            }
            out.table(
                &["id", "os", "kind", "planned", "month", "kb", "build", "superseded_by"],
                &[release_row(&r)],
            )
        }
        ReleasesCommand::Import { file } => import(&read_json_file(&file)?, client, out).await,
        ReleasesCommand::Updates { os, classification, page } => {
            let mut query = Query::new();
            query.extend(os.map(|v| ("os", v)));
            query.extend(classification.map(|v| ("classification", v)));
            let answer = list(client, "/v1/updates", query, &page).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|u| {
                    vec![
                        text(u, "/kb"),
                        text(u, "/classification"),
                        text(u, "/os"),
                        text(u, "/requires_reboot"),
                        text(u, "/auto_installed"),
                        text(u, "/title"),
                    ]
                })
                .collect();
            page_table(out, &["kb", "classification", "os", "reboot", "auto", "title"], &rows, &answer)
        }
    }
}

fn release_row(r: &Value) -> Vec<String> {
    vec![
        text(r, "/id"),
        text(r, "/os"),
        text(r, "/kind"),
        text(r, "/planned"),
        text(r, "/month"),
        text(r, "/kb"),
        text(r, "/build"),
        text(r, "/superseded_by"),
    ]
}

/// Publishes a catalog's releases, then its updates, in file order. A 409 (already in the
/// catalog) is skipped; any other refusal stops the import after reporting what was done.
async fn import(catalog: &Value, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let (releases, updates) = match catalog {
        Value::Array(releases) => (releases.as_slice(), &[][..]),
        Value::Object(map) => (
            map.get("releases").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(),
            map.get("updates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default(),
        ),
        _ => {
            return Err(CliError::Input(
                "a catalog is an object with releases and updates, or an array".into(),
            ))
        }
    };
    if releases.is_empty() && updates.is_empty() {
        return Err(CliError::Input("the catalog has no releases and no updates".to_owned()));
    }
    let mut report = json!({ "releases": [], "updates": [] });
    let mut failure = None;
    'outer: for (kind, path, list) in
        [("releases", "/v1/releases", releases), ("updates", "/v1/updates", updates)]
    {
        for item in list {
            let kb = text(item, "/kb");
            let entry = match client.post(path, &Query::new(), Some(item)).await {
                Ok(answer) => json!({ "kb": kb, "result": "published", "answer": answer }),
                Err(CliError::Problem { status: 409, detail, .. }) => {
                    json!({ "kb": kb, "result": "skipped", "detail": detail })
                }
                Err(CliError::Problem { status, code, detail }) => {
                    failure = Some(CliError::Problem { status, code, detail: format!("{kb}: {detail}") });
                    break 'outer;
                }
                Err(e) => {
                    failure = Some(e);
                    break 'outer;
                }
            };
            if let Some(list) = report.get_mut(kind).and_then(Value::as_array_mut) {
                list.push(entry);
            }
        }
    }
    let counts = |kind: &str, result: &str| {
        report[kind].as_array().map(|l| l.iter().filter(|e| e["result"] == result).count()).unwrap_or(0)
    };
    let summary = format!(
        "releases: {} published, {} already in the catalog; updates: {} published, {} already there",
        counts("releases", "published"),
        counts("releases", "skipped"),
        counts("updates", "published"),
        counts("updates", "skipped"),
    );
    if out.is_json() {
        out.json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = ["releases", "updates"]
            .iter()
            .flat_map(|kind| report[*kind].as_array().cloned().unwrap_or_default())
            .map(|e| {
                let what = match e.get("answer") {
                    Some(a) => ["/os", "/kind", "/month", "/classification"]
                        .iter()
                        .map(|p| text(a, p))
                        .filter(|t| t != "-")
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => text(&e, "/detail"),
                };
                vec![text(&e, "/kb"), text(&e, "/result"), what]
            })
            .collect();
        out.table(&["kb", "result", "what"], &rows)?;
        out.line(&summary)?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
