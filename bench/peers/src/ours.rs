//! Our side: the store's own functions, as the service calls them for an agent — one machine per
//! job (an agent claims only its own machine's jobs), `jobs::claim` then `jobs::complete`, each
//! its own statement and so its own transaction; and the batched `claim_many` / `complete_many`
//! the service's batch runners send.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use chrono::{TimeDelta, Utc};
use hotpatch_domain::job::{JobResult, Outcome};
use hotpatch_domain::{assess, Image, MachineSpec, OsVersion, Platform, RegionCapabilities, Timezone};
use hotpatch_store::jobs::{self, ClaimRequest, Completion, ResultRequest};
use hotpatch_store::machines::{self, MachineWrite};
use hotpatch_store::PgPool;
use uuid::Uuid;

/// The service's default lease (`Settings::lease_ttl`); nothing expires during a run.
const TTL: TimeDelta = TimeDelta::seconds(120);
/// Machines registered per statement.
const INSERT_CHUNK: usize = 5_000;

/// Migrates, registers `n` machines and queues one assessment for each (`enqueue_assessments`,
/// as "assess now" for a fleet does). Returns the machines and how long the enqueue took.
pub async fn prepare(pool: &PgPool, n: usize) -> anyhow::Result<(Arc<Vec<Uuid>>, Duration)> {
    hotpatch_store::migrate(pool).await.context("migrating")?;
    let caps = RegionCapabilities::default();
    let tz: Timezone = "Europe/Berlin".parse().map_err(anyhow::Error::msg)?;
    let mut ids = Vec::with_capacity(n);
    for first in (0..n).step_by(INSERT_CHUNK) {
        let specs: Vec<MachineSpec> = (first..n.min(first + INSERT_CHUNK)).map(|i| spec(i, tz)).collect();
        let eligibility: Vec<_> = specs.iter().map(|s| assess(s, &caps)).collect();
        let writes: Vec<MachineWrite<'_>> = specs
            .iter()
            .zip(&eligibility)
            .map(|(spec, eligibility)| MachineWrite {
                spec,
                eligibility,
                hotpatch_status: hotpatch_domain::HotpatchStatus::Enabled,
                enrollment: None,
            })
            .collect();
        let mut conn = pool.acquire().await?;
        ids.extend(machines::insert_many(&mut conn, &writes).await?.into_iter().map(|m| m.id));
    }
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let queued = jobs::enqueue_assessments(&mut tx, None, &ids, 0, Utc::now()).await?;
    tx.commit().await?;
    let enqueue = started.elapsed();
    ensure!(queued.len() == n, "{} jobs queued for {n} machines", queued.len());
    Ok((Arc::new(ids), enqueue))
}

/// `workers` concurrent agents, each taking the next machine: `claim` (one statement, its own
/// transaction), then `complete` (likewise). Returns the wall time until every job is done.
pub async fn one_by_one(pool: &PgPool, machines: Arc<Vec<Uuid>>, workers: usize) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, machines, next) = (pool.clone(), machines.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(&machine) = machines.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let job = jobs::claim(&pool, machine, Utc::now(), TTL)
                        .await?
                        .with_context(|| format!("no job for machine {machine}"))?;
                    let result = succeeded(job.lease.id);
                    let mut conn = pool.acquire().await?;
                    match jobs::complete(&mut conn, job.id, machine, &result, Utc::now()).await? {
                        Ok(Completion::Recorded(_)) => {}
                        other => bail!("job {} not recorded: {other:?}", job.id),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// `workers` concurrent batch runners, each taking the next `batch` machines: one `claim_many`
/// statement, then one `complete_many` statement for the jobs it got.
pub async fn batched(
    pool: &PgPool,
    machines: Arc<Vec<Uuid>>,
    workers: usize,
    batch: usize,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, machines, next) = (pool.clone(), machines.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    let Some(mine) = machines.get(first..machines.len().min(first + batch)) else { break };
                    if mine.is_empty() {
                        break;
                    }
                    let requests: Vec<ClaimRequest> = mine
                        .iter()
                        .map(|&machine_id| ClaimRequest { machine_id, lease_id: Uuid::new_v4() })
                        .collect();
                    let claimed = jobs::claim_many(&pool, &requests, Utc::now(), TTL).await?;
                    ensure!(
                        claimed.len() == mine.len(),
                        "{} of {} claims got a job",
                        claimed.len(),
                        mine.len()
                    );
                    let results: Vec<JobResult> = claimed.iter().map(|j| succeeded(j.lease.id)).collect();
                    let requests: Vec<ResultRequest<'_>> = claimed
                        .iter()
                        .zip(&results)
                        .map(|(j, result)| ResultRequest { job_id: j.id, machine_id: j.machine_id, result })
                        .collect();
                    let recorded = jobs::complete_many(&pool, &requests, Utc::now()).await?;
                    ensure!(
                        recorded.len() == mine.len(),
                        "{} of {} results recorded",
                        recorded.len(),
                        mine.len()
                    );
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Every one of the `n` jobs ended `succeeded` (the loop really did the work it timed).
pub async fn check_all_done(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let done: i64 =
        sqlx::query_scalar("select count(*) from job where state = 'succeeded'").fetch_one(pool).await?;
    ensure!(done as usize == n, "{done} of {n} jobs succeeded");
    Ok(())
}

/// The agent's report of a job done under `lease_id`, as `hotpatch-agent` sends it.
fn succeeded(lease_id: Uuid) -> JobResult {
    JobResult {
        lease_id,
        outcome: Outcome::Succeeded,
        error: None,
        installed: vec![],
        rebooted: None,
        reboot_pending: None,
    }
}

/// Machine `i`: a plain eligible Azure VM, as the store's tests register them.
fn spec(i: usize, timezone: Timezone) -> MachineSpec {
    MachineSpec {
        name: format!("peers-{i:07}"),
        platform: Platform::AzureVm,
        os: OsVersion::WindowsServer2022,
        image: Some(Image {
            publisher: "MicrosoftWindowsServer".into(),
            offer: "WindowsServer".into(),
            sku: "2022-datacenter-azure-edition-core".into(),
            kind: Default::default(),
        }),
        edition: None,
        os_build: "20348.2700".parse().ok(),
        vbs_enabled: None,
        region: "westeurope".into(),
        availability_zone: Some("1".into()),
        availability_set: None,
        update_domain: None,
        fault_domain: None,
        scale_set: None,
        timezone,
        hotpatch_enabled: true,
        patch_orchestration: Default::default(),
        labels: BTreeMap::new(),
    }
}
