//! `hotpatchctl regions …`: region capabilities (where Windows Server 2025 Azure Edition is
//! offered; changed by admins) and the geo-pairs that rollouts never put in one wave.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `regions` subcommands.
#[derive(Debug, Subcommand)]
pub enum RegionsCommand {
    /// List regions and their capabilities.
    List,
    /// Show one region.
    Get {
        /// Region name, e.g. uksouth.
        name: String,
    },
    /// Create or update a region (admin); machines whose eligibility depends on it are
    /// evaluated again.
    Set {
        /// Region name.
        name: String,
        /// Whether Windows Server 2025 Azure Edition images are offered there.
        #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
        ws2025_azure_edition: bool,
    },
    /// Geo-pairs of regions: list, add, remove.
    #[command(subcommand)]
    Pairs(PairsCommand),
}

/// `regions pairs` subcommands.
#[derive(Debug, Subcommand)]
pub enum PairsCommand {
    /// List every pair.
    List,
    /// Pair two regions (admin): rollouts planned from now on keep them in different waves.
    Add {
        /// One region.
        a: String,
        /// The other.
        b: String,
    },
    /// Unpair two regions (admin).
    Remove {
        /// One region.
        a: String,
        /// The other.
        b: String,
    },
}

/// Runs a `regions` subcommand.
pub async fn run(command: RegionsCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        RegionsCommand::List => {
            let answer = client.get("/v1/regions", &Query::new()).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer).iter().map(region_row).collect();
            out.table(&REGION_HEADERS, &rows)
        }
        RegionsCommand::Get { name } => {
            let r = client.get(&format!("/v1/regions/{name}"), &Query::new()).await?;
            show_region(out, &r)
        }
        RegionsCommand::Set { name, ws2025_azure_edition } => {
            let body = json!({ "windows_server_2025_azure_edition": ws2025_azure_edition });
            let r = client.put(&format!("/v1/regions/{name}"), Some(&body)).await?;
            show_region(out, &r)
        }
        RegionsCommand::Pairs(PairsCommand::List) => {
            let answer = client.get("/v1/region-pairs", &Query::new()).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> =
                items(&answer).iter().map(|p| vec![text(p, "/region_a"), text(p, "/region_b")]).collect();
            out.table(&["region a", "region b"], &rows)
        }
        RegionsCommand::Pairs(PairsCommand::Add { a, b }) => {
            let p = client.put(&format!("/v1/region-pairs/{a}/{b}"), None).await?;
            if out.is_json() {
                return out.json(&p);
            }
            out.line(&format!("paired {} and {}", text(&p, "/region_a"), text(&p, "/region_b")))
        }
        RegionsCommand::Pairs(PairsCommand::Remove { a, b }) => {
            let answer = client.delete(&format!("/v1/region-pairs/{a}/{b}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("unpaired {a} and {b}"))
        }
    }
}

const REGION_HEADERS: [&str; 3] = ["name", "ws2025 azure edition", "updated"];

fn region_row(r: &Value) -> Vec<String> {
    vec![text(r, "/name"), text(r, "/windows_server_2025_azure_edition"), text(r, "/updated_at")]
}

fn show_region(out: &mut Out, r: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(r);
    }
    out.table(&REGION_HEADERS, &[region_row(r)])
}
