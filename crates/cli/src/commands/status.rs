//! `hotpatchctl status <machine>`: the portal's patch status view of one machine.

use clap::Args;
use serde_json::Value;
use uuid::Uuid;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{text, Out};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine id.
    pub id: Uuid,
    /// Evaluate at another instant (RFC 3339), e.g. to see the cycle next month.
    #[arg(long)]
    pub at: Option<String>,
}

/// Runs `status`.
pub async fn run(args: StatusArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let mut query = Query::new();
    query.extend(args.at.map(|at| ("at", at)));
    let s = client.get(&format!("/v1/machines/{}/patch-status", args.id), &query).await?;
    if out.is_json() {
        return out.json(&s);
    }
    let release = |pointer: &str| match s.pointer(pointer) {
        Some(r) if r.is_object() => {
            format!("{} {} {} ({})", text(r, "/kb"), text(r, "/kind"), text(r, "/month"), text(r, "/build"))
        }
        _ => "-".to_owned(),
    };
    let next = match s.pointer("/cycle/next_release") {
        Some(n) if n.is_object() => {
            let reboot = if n.get("reboot_required") == Some(&Value::Bool(true)) { ", reboot" } else { "" };
            match n.get("release") {
                Some(r) if r.is_object() => format!("{} {}{reboot}", text(n, "/kind"), text(r, "/kb")),
                _ => format!("{}{reboot}", text(n, "/kind")),
            }
        }
        _ => "-".to_owned(),
    };
    let window = match s.get("next_window") {
        Some(w) if w.is_object() => {
            format!("{} → {} ({})", text(w, "/start_local"), text(w, "/end_local"), text(w, "/timezone"))
        }
        _ => "-".to_owned(),
    };
    let agent = match s.get("agent") {
        Some(a) if a.is_object() => {
            let state =
                if a.get("connected") == Some(&Value::Bool(true)) { "connected" } else { "not connected" };
            format!("{state}, last seen {}", text(a, "/last_seen_at"))
        }
        _ => "no agent".to_owned(),
    };
    let pairs = vec![
        ("machine", text(&s, "/machine_id")),
        ("hotpatch", text(&s, "/hotpatch/status")),
        ("eligible", text(&s, "/hotpatch/eligible")),
        ("os build", text(&s, "/os_build")),
        ("current baseline", release("/current_baseline")),
        ("latest installed", release("/latest_installed")),
        ("cycle", format!("{} {}", text(&s, "/cycle/month"), text(&s, "/cycle/kind"))),
        ("next release", next),
        ("reboot pending", text(&s, "/reboot_pending")),
        ("last assessment", text(&s, "/last_assessment_at")),
        ("next window", window),
        ("agent", agent),
        ("health", text(&s, "/health/status")),
        ("rollout", text(&s, "/rollout/id")),
    ];
    out.fields(&pairs)?;
    for (title, pointer) in
        [("recommended updates", "/recommended_updates"), ("update compliance", "/update_compliance")]
    {
        let updates = s.pointer(pointer).and_then(Value::as_array).cloned().unwrap_or_default();
        out.line("")?;
        out.line(&format!("{title} ({})", updates.len()))?;
        if updates.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = updates
            .iter()
            .map(|u| {
                vec![
                    text(u, "/kb"),
                    text(u, "/classification"),
                    text(u, "/requires_reboot"),
                    text(u, "/title"),
                ]
            })
            .collect();
        out.table(&["kb", "classification", "reboot", "title"], &rows)?;
    }
    Ok(())
}
