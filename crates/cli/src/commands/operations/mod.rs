//! `hotpatchctl assess | install | rollback | operation`: start an operation and, with `--wait`,
//! follow it (`GET /v1/operations/{id}?wait=30`) until it is over. The exit code is the verdict:
//! 0 only when it succeeded on every machine; otherwise one line on stderr says why.
//!
//! This module starts operations; following one to its end is in `follow.rs`, listing and
//! canceling them in `control.rs`.

mod control;
mod follow;

pub use control::{run as control, OperationsCommand};

use clap::Args;
use hotpatch_domain::payload::RebootSetting;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{idempotency_key, SelectorArgs};
use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::Out;
use follow::finish;

/// Waiting for an operation.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until it is over; exit 0 only when it succeeded on every machine.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit 1).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub timeout: u64,
}

/// Arguments of `assess`.
#[derive(Debug, Args)]
pub struct AssessArgs {
    /// Machine ids. One machine is assessed through `POST /v1/machines/{id}/assess`; several,
    /// or ids with labels or regions, through a selector (`POST /v1/assessments`).
    #[arg(value_name = "MACHINE_ID")]
    pub machines: Vec<Uuid>,
    /// Which machines.
    #[command(flatten)]
    pub selector: SelectorArgs,
    /// Assess the whole fleet (required when no machine, label or region is named).
    #[arg(long, conflicts_with_all = ["machines", "labels", "regions"])]
    pub fleet: bool,
    /// `Idempotency-Key` of the request, e.g. the CI run id: a retried job gets the same
    /// operation back. A fresh one is made by default.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Leave out machines whose agent is not connected (the server names them in a warning),
    /// so `--wait` waits only for machines that can answer.
    #[arg(long)]
    pub skip_disconnected: bool,
    /// Waiting for the operation.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Machine id.
    pub id: Uuid,
    /// Classifications to install (repeatable or comma-separated; default critical,security).
    #[arg(long = "classification", value_delimiter = ',')]
    pub classifications: Vec<String>,
    /// KBs to install as well, whatever their classification.
    #[arg(long, value_delimiter = ',')]
    pub kb_include: Vec<String>,
    /// KBs never to install.
    #[arg(long, value_delimiter = ',')]
    pub kb_exclude: Vec<String>,
    /// Leave out every update that needs a reboot.
    #[arg(long)]
    pub exclude_kbs_requiring_reboot: bool,
    /// The job's time limit, ISO 8601 (PT30M–PT6H; default PT2H).
    #[arg(long)]
    pub maximum_duration: Option<String>,
    /// Whether the machine may reboot: if_required (default), never or always.
    #[arg(long)]
    pub reboot: Option<RebootSetting>,
    /// `Idempotency-Key` of the request (a fresh one by default).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Waiting for the operation.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Machine id.
    pub id: Uuid,
    /// `Idempotency-Key` of the request (a fresh one by default).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Waiting for the operation.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Arguments of `operation`.
#[derive(Debug, Args)]
pub struct OperationArgs {
    /// Operation id.
    pub id: Uuid,
    /// Waiting for the operation.
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Runs `assess`.
pub async fn assess(args: AssessArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    if args.machines.is_empty() && args.selector.is_empty() && !args.fleet {
        return Err(CliError::Input(
            "name what to assess: machine ids, --label, --region, or --fleet for every machine".to_owned(),
        ));
    }
    let key = idempotency_key(args.idempotency_key.as_deref());
    let op = match args.machines.as_slice() {
        [id] if args.selector.is_empty() && !args.skip_disconnected => {
            client.post_idempotent(&format!("/v1/machines/{id}/assess"), None, &key).await?
        }
        ids => {
            let selector = serde_json::to_value(args.selector.selector(ids))
                .map_err(|e| CliError::Input(format!("selector: {e}")))?;
            let path = if args.skip_disconnected {
                "/v1/assessments?skip_disconnected=true"
            } else {
                "/v1/assessments"
            };
            client.post_idempotent(path, Some(&selector), &key).await?
        }
    };
    finish(op, &args.wait, client, out).await
}

/// The body of `POST /v1/machines/{id}/install`: only what was given.
fn install_body(args: &InstallArgs) -> Value {
    let mut body = Map::new();
    let list = |v: &[String]| Value::from(v.to_vec());
    if !args.classifications.is_empty() {
        body.insert("classifications".into(), list(&args.classifications));
    }
    if !args.kb_include.is_empty() {
        body.insert("kb_include".into(), list(&args.kb_include));
    }
    if !args.kb_exclude.is_empty() {
        body.insert("kb_exclude".into(), list(&args.kb_exclude));
    }
    if args.exclude_kbs_requiring_reboot {
        body.insert("exclude_kbs_requiring_reboot".into(), Value::Bool(true));
    }
    if let Some(d) = &args.maximum_duration {
        body.insert("maximum_duration".into(), Value::from(d.as_str()));
    }
    if let Some(r) = args.reboot {
        body.insert("reboot".into(), Value::from(<&'static str>::from(r)));
    }
    Value::Object(body)
}

/// Runs `install`.
pub async fn install(args: InstallArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let key = idempotency_key(args.idempotency_key.as_deref());
    let body = install_body(&args);
    let op = client.post_idempotent(&format!("/v1/machines/{}/install", args.id), Some(&body), &key).await?;
    finish(op, &args.wait, client, out).await
}

/// Runs `rollback`.
pub async fn rollback(args: RollbackArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let key = idempotency_key(args.idempotency_key.as_deref());
    let op = client.post_idempotent(&format!("/v1/machines/{}/rollback", args.id), None, &key).await?;
    finish(op, &args.wait, client, out).await
}

/// Runs `operation`.
pub async fn follow(args: OperationArgs, client: &Client, out: &mut Out) -> Result<(), CliError> {
    let op = client.get(&format!("/v1/operations/{}", args.id), &Query::new()).await?;
    finish(op, &args.wait, client, out).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_install_body_carries_only_the_options_given() {
        let args = InstallArgs {
            id: Uuid::nil(),
            classifications: vec![],
            kb_include: vec![],
            kb_exclude: vec!["KB5040003".into()],
            exclude_kbs_requiring_reboot: true,
            maximum_duration: None,
            reboot: Some(RebootSetting::IfRequired),
            idempotency_key: None,
            wait: WaitArgs { wait: false, timeout: 1 },
        };
        assert_eq!(
            install_body(&args),
            json!({"kb_exclude": ["KB5040003"], "exclude_kbs_requiring_reboot": true, "reboot": "if_required"})
        );
    }
}
