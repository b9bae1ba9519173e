//! Shared helpers of the queue, operation and agent store tests: a fixed instant, machines to
//! hang jobs on, jobs and results with the usual defaults, and a blocking side-channel that runs
//! a store call on a connection of its own (to land a write in the middle of another call).
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hotpatch_domain::job::{ClaimedJob, JobKind, JobResult, Outcome};
use hotpatch_domain::{assess, Image, MachineSpec, OsVersion, Platform, RegionCapabilities};
use hotpatch_store::jobs::NewJob;
use hotpatch_store::machines::{self, MachineWrite};
use hotpatch_store::PgPool;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The tests' "now": every instant is this one moved explicitly.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 9, 0, 0).unwrap()
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A lease length long enough that nothing expires unless a test moves time past it.
pub const TTL: TimeDelta = TimeDelta::minutes(5);

pub fn spec(name: &str, region: &str, labels: &[(&str, &str)]) -> MachineSpec {
    MachineSpec {
        name: name.to_owned(),
        platform: Platform::AzureVm,
        os: OsVersion::WindowsServer2022,
        image: Some(Image {
            publisher: "MicrosoftWindowsServer".into(),
            offer: "WindowsServer".into(),
            sku: "2022-datacenter-azure-edition-core".into(),
            kind: Default::default(),
        }),
        edition: None,
        os_build: Some("20348.2700".parse().unwrap()),
        vbs_enabled: None,
        region: region.to_owned(),
        availability_zone: Some("1".into()),
        availability_set: None,
        update_domain: None,
        fault_domain: None,
        scale_set: None,
        timezone: "Europe/Berlin".parse().unwrap(),
        hotpatch_enabled: true,
        patch_orchestration: Default::default(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
    }
}

/// Registers these machines in one statement; their ids in input order.
pub async fn insert_specs(pool: &PgPool, specs: &[MachineSpec]) -> Vec<Uuid> {
    let caps = RegionCapabilities::default();
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
    let mut conn = pool.acquire().await.unwrap();
    machines::insert_many(&mut conn, &writes).await.unwrap().into_iter().map(|m| m.id).collect()
}

/// `n` plain machines (`m-00000`, …); their ids in name order.
pub async fn machines(pool: &PgPool, n: usize) -> Vec<Uuid> {
    let specs: Vec<MachineSpec> = (0..n).map(|i| spec(&format!("m-{i:05}"), "westeurope", &[])).collect();
    insert_specs(pool, &specs).await
}

/// One plain machine.
pub async fn machine(pool: &PgPool) -> Uuid {
    let name = format!("m-{}", Uuid::now_v7().simple());
    insert_specs(pool, &[spec(&name, "westeurope", &[])]).await[0]
}

/// A job of `kind` for `machine`, claimable from `run_after`, three attempts, priority 0.
pub fn job(kind: JobKind, machine_id: Uuid, run_after: DateTime<Utc>) -> NewJob {
    NewJob {
        kind,
        machine_id,
        payload: serde_json::json!({}),
        priority: 0,
        run_after,
        max_attempts: 3,
        operation_id: None,
        rollout_id: None,
        now: run_after,
    }
}

/// The agent's report of a job done under `lease_id`.
pub fn result(lease_id: Uuid, outcome: Outcome, error: Option<&str>) -> JobResult {
    JobResult {
        lease_id,
        outcome,
        error: error.map(str::to_owned),
        installed: vec![],
        rebooted: None,
        reboot_pending: None,
    }
}

pub fn succeeded(claimed: &ClaimedJob) -> JobResult {
    result(claimed.lease.id, Outcome::Succeeded, None)
}

/// Runs `f` on a fresh connection to `url`, on a thread and runtime of its own, and waits for it.
///
/// For the synchronous callbacks of the store (jitter, next schedule): it lands a write from
/// "another replica" between the statements of the call that is running the callback.
pub fn on_side_connection<T, F, Fut>(url: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(PgConnection) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let url = url.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            // Never wait forever on a lock the calling connection holds.
            sqlx::query("set lock_timeout = '2s'").execute(&mut conn).await.unwrap();
            f(conn).await
        })
    })
    .join()
    .unwrap()
}

/// A new "assess now" operation (no jobs yet) created at `now`; its id.
pub async fn new_operation(conn: &mut PgConnection, now: DateTime<Utc>) -> Uuid {
    let request = serde_json::json!({});
    let op = hotpatch_store::operations::NewOperation {
        kind: hotpatch_domain::operation::OperationKind::Assess,
        request: &request,
        created_by: None,
        idempotency: None,
        now,
    };
    match hotpatch_store::operations::create(conn, &op).await.unwrap() {
        hotpatch_store::operations::Created::New(id) => id,
        other => panic!("expected a new operation, got {other:?}"),
    }
}
