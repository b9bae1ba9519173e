//! Bench fixtures: registering machines, bringing their agents online and queueing jobs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use hotpatch_domain::job::{JobResult, Outcome};
use serde_json::Value;
use uuid::Uuid;

use super::{failed, BenchError, Target};
use crate::client::{AgentClient, FleetClient, MachineRef};
use crate::fleet::machine_spec;

/// A registered bench machine with its agent client.
pub(super) struct BenchAgent {
    pub(super) id: Uuid,
    pub(super) client: AgentClient,
}

/// Registers `n` machines labelled `bench=<run>` and mints their agent tokens, `concurrency` at a
/// time; prints progress to stderr.
pub(super) async fn enroll(
    target: &Target,
    http: &reqwest::Client,
    run: &str,
    n: usize,
) -> Result<Vec<BenchAgent>, BenchError> {
    let fleet = FleetClient::new(http.clone(), &target.server, &target.token);
    let regions = ["uksouth".to_owned(), "eastasia".to_owned(), "westcentralus".to_owned()];
    let ws2025: BTreeSet<String> = regions.iter().cloned().collect();
    let mut machines: Vec<MachineRef> = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let specs: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let mut spec = machine_spec(run, i, &regions, &ws2025);
                spec.labels.insert("bench".to_owned(), run.to_owned());
                spec
            })
            .collect();
        machines.extend(fleet.import(&specs).await.map_err(failed("registering bench machines"))?);
    }
    let started = Instant::now();
    let agents: Vec<Result<BenchAgent, BenchError>> = stream::iter(machines)
        .map(|m| {
            let fleet = fleet.clone();
            let (http, server) = (http.clone(), target.server.clone());
            async move {
                let token = fleet
                    .agent_token(m.id, &format!("bench {}", m.name))
                    .await
                    .map_err(failed("minting agent tokens"))?;
                Ok(BenchAgent { id: m.id, client: AgentClient::new(http, &server, &token) })
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let agents = agents.into_iter().collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "bench: {} machines registered with agent tokens in {:.1} s",
        agents.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(agents)
}

/// Brings the agents online before work arrives, as a fleet's agents are: each makes its first
/// call, a claim, `concurrency` at a time (a first assessment the server already queued is done
/// at once), and the server writes their last-seen marks (about once a second) before this
/// returns.
pub(super) async fn connect(fleet: &[BenchAgent], concurrency: usize) -> Result<(), BenchError> {
    let started = Instant::now();
    let claims: Vec<Result<(), BenchError>> = stream::iter(fleet)
        .map(|agent| async move {
            if let Some(job) =
                agent.client.claim(Duration::ZERO).await.map_err(failed("connecting agents"))?
            {
                agent
                    .client
                    .result(job.id, &succeeded(job.lease.id))
                    .await
                    .map_err(failed("connecting agents"))?;
            }
            Ok(())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    claims.into_iter().collect::<Result<Vec<_>, _>>()?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    eprintln!("bench: {} agents online in {:.1} s", fleet.len(), started.elapsed().as_secs_f64());
    Ok(())
}

/// `POST /v1/assessments` for a selector; returns the operation.
pub(super) async fn assess(
    target: &Target,
    http: &reqwest::Client,
    selector: &Value,
) -> Result<Value, BenchError> {
    let response = http
        .post(format!("{}/v1/assessments", target.server))
        .bearer_auth(&target.token)
        .json(selector)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| failed("requesting assessments")(e.into()))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| failed("reading the operation")(e.into()))?;
    if status.as_u16() != 202 {
        return Err(BenchError::Unexpected(format!("POST /v1/assessments answered {status}: {body}")));
    }
    Ok(body)
}

/// The result of a job the bench did instantly.
pub(super) fn succeeded(lease_id: Uuid) -> JobResult {
    JobResult {
        lease_id,
        outcome: Outcome::Succeeded,
        error: None,
        installed: vec![],
        rebooted: None,
        reboot_pending: None,
    }
}
