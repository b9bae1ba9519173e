//! The agent loop of one machine: long-poll for a job, run it on the [`Executor`] while
//! heartbeats keep its lease, then spool its reports ([`crate::spool`]) and deliver them: the
//! inventory, the result and, after disruptive jobs, the health. Reports are retried with
//! backoff until the server answers for good, across restarts too (the spool is drained before
//! the first claim), and a job re-offered after its work finished here is reported again, never
//! run again. The job in hand is noted on disk before its work starts: a restart of the machine
//! that the job started (the executor answers `awaits_restart`) is waited for with the lease
//! kept, and confirmed at the agent's next start by the boot marker; a job an earlier run left
//! in hand without an answer is not reported (its lease expires and it is offered again, as for
//! any agent that went away), except a `reboot` the machine went through: that one succeeded. A lost lease during the work drops the job; transport errors and 5xx back off
//! exponentially with jitter; a 401 stops the agent; cancellation stops it between jobs (a job
//! in hand gets a short grace period to finish and report; what it could not report stays
//! spooled).

mod policy;
mod report;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hotpatch_domain::job::{ClaimedJob, JobKind, JobResult, Lease, Outcome};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};
use uuid::Uuid;

use crate::boot;
use crate::client::{AgentClient, ClientError};
use crate::execlog::ExecutionLog;
use crate::executor::{Executor, JobOutcome};
use crate::spool::{Entry, InHand, Spool, SpoolError};

pub use policy::{backoff, heartbeat_interval, BACKOFF_BASE, BACKOFF_MAX, HEARTBEAT_MIN};
use stats::{Connection, Running};
pub use stats::{Progress, Stats};

/// How an agent behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Long-poll wait of a claim (the server caps it at 60 s).
    pub wait: Duration,
    /// Heartbeats come at least this often while a job runs.
    pub heartbeat_max: Duration,
    /// After cancellation, how long a job in hand may still run and report before it is dropped.
    pub shutdown_grace: Duration,
    /// Wait before the first claim (the simulator staggers its agents with it).
    pub first_claim_delay: Duration,
    /// Tries of a health report that fails with a retryable error. Results and inventories
    /// have no cap: they are spooled and retried until the server answers for good.
    pub health_attempts: u32,
    /// Where to note each job whose work finished here (`--execution-log`), if anywhere.
    pub execution_log: Option<ExecutionLog>,
    /// How long a restart the executor started may take to happen before the job fails.
    pub restart_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            wait: Duration::from_secs(30),
            heartbeat_max: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            first_claim_delay: Duration::ZERO,
            health_attempts: 5,
            execution_log: None,
            restart_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Why an agent stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server refused the token (401): retrying cannot help.
    #[error("the server refused the agent token: {0}")]
    Unauthorized(String),
    /// The state directory (spool and finished-job record) cannot be used.
    #[error(transparent)]
    State(#[from] SpoolError),
}
/// How keeping a lease ended (it never ends while all is well).
enum LeaseEnd {
    Lost(String),
    Unauthorized(String),
}

/// Waits `d`; true when cancelled first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// The agent of one machine.
pub struct Agent<E> {
    client: AgentClient,
    executor: E,
    config: AgentConfig,
    conn: Connection,
    spool: Spool,
}

impl<E: Executor> Agent<E> {
    /// An agent that runs jobs claimed through `client` on `executor`, keeps finished work in
    /// `spool` (see [`Spool::open`]) and counts into `stats`.
    pub fn new(
        client: AgentClient,
        executor: E,
        config: AgentConfig,
        stats: Arc<Stats>,
        spool: Spool,
    ) -> Agent<E> {
        stats.machines.fetch_add(1, Ordering::Relaxed);
        Agent { client, executor, config, conn: Connection { up: AtomicBool::new(false), stats }, spool }
    }

    /// Claims and runs jobs until `cancel` fires (then `Ok`) or the token is refused.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), AgentError> {
        let result = self.claim_loop(&cancel).await;
        self.conn.set(false);
        result
    }

    async fn claim_loop(&mut self, cancel: &CancellationToken) -> Result<(), AgentError> {
        // What an earlier run left in hand or undelivered goes before any new work.
        self.recover().await;
        if self.drain(cancel).await? || sleep_or_cancel(self.config.first_claim_delay, cancel).await {
            return Ok(());
        }
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            if self.drain(cancel).await? {
                return Ok(());
            }
            let claimed = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = self.client.claim(self.config.wait) => r,
            };
            self.conn.note(&claimed);
            match claimed {
                Ok(None) => failures = 0,
                Ok(Some(job)) => {
                    failures = 0;
                    let span = info_span!("job", job_id = %job.id, kind = <&str>::from(job.kind), attempt = job.attempt);
                    self.handle(job, cancel).instrument(span).await?;
                }
                Err(ClientError::Unauthorized(detail)) => return Err(AgentError::Unauthorized(detail)),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = backoff(failures, rand::thread_rng().gen());
                    warn!(error = %e, failures, retry_in_ms = delay.as_millis() as u64, "claim failed");
                    if sleep_or_cancel(delay, cancel).await {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs one job and reports it; after cancellation it has `shutdown_grace` to finish.
    async fn handle(&mut self, job: ClaimedJob, cancel: &CancellationToken) -> Result<(), AgentError> {
        let stats = self.conn.stats.clone();
        stats.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(stats);
        debug!("job claimed");
        let grace = self.config.shutdown_grace;
        let deadline = async {
            cancel.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            done = self.process(&job, cancel) => done,
            _ = deadline => {
                warn!("shutting down: job dropped before it was reported; its lease will expire");
                Ok(())
            }
        }
    }

    /// Runs one job, spools its reports and delivers them. A job whose work already finished
    /// here (re-offered after a late report) is not run again: its kept result is reported
    /// under the new lease.
    async fn process(&mut self, job: &ClaimedJob, cancel: &CancellationToken) -> Result<(), AgentError> {
        if let Some((kind, kept)) = self.spool.kept(job.id) {
            warn!(
                "job offered again after its work finished here: reporting the kept result, not running it"
            );
            let entry = match self.spool.pending(job.id) {
                // Still unsettled (not reached while the spool is drained before each claim, but
                // its undelivered inventory must not be lost): the same reports, the new lease.
                Some(pending) => Entry {
                    lease: job.lease,
                    result: JobResult { lease_id: job.lease.id, ..pending.result.clone() },
                    ..pending.clone()
                },
                None => Entry::again(job.id, kind, job.lease, kept),
            };
            self.spool.keep(entry);
            return self.deliver(job.id, cancel).await.map(drop);
        }
        let boot = self.executor.boot_marker();
        self.spool.hold(InHand { job: job.clone(), boot: boot.clone(), answer: None, answered_at: None });
        let Some((mut outcome, lease)) = self.work(job).await? else {
            self.spool.let_go();
            return Ok(());
        };
        if outcome.awaits_restart {
            let job = ClaimedJob { lease, ..job.clone() };
            outcome = self.await_restart(job, boot, outcome).await?;
        }
        self.spool_finished(job, outcome, lease).await;
        self.deliver(job.id, cancel).await.map(drop)
    }

    /// Spools the reports of a job whose work finished, then lets go of it.
    async fn spool_finished(&mut self, job: &ClaimedJob, outcome: JobOutcome, lease: Lease) {
        let entry = self.finished(job, outcome, lease).await;
        let ended = entry.result.outcome;
        // On disk before anything is sent: from here on the job is never run again.
        self.spool.keep(entry);
        self.spool.let_go();
        if let Some(log) = &self.config.execution_log {
            log.record(job, ended);
        }
    }

    /// The executor started a restart of the machine: notes its answer on disk and waits for
    /// the restart, keeping the lease while it can (no new job is claimed meanwhile). The restart
    /// stops the agent; its next start reports the answer ([`Agent::recover`]). Returns only
    /// when the restart did not come in time: the job then failed.
    async fn await_restart(
        &mut self,
        job: ClaimedJob,
        boot: Option<String>,
        answer: JobOutcome,
    ) -> Result<JobOutcome, AgentError> {
        let timeout = self.config.restart_timeout;
        warn!(timeout_s = timeout.as_secs(), "the job started a restart of the machine: waiting for it");
        let (job_id, lease) = (job.id, std::sync::Mutex::new(job.lease));
        self.spool.hold(InHand { job, boot, answer: Some(answer), answered_at: Some(Utc::now()) });
        let Agent { client, config, conn, .. } = self;
        let waited = tokio::time::sleep(timeout);
        tokio::pin!(waited);
        let keep = keep_lease(client, conn, job_id, &lease, config.heartbeat_max);
        tokio::select! {
            _ = &mut waited => {}
            end = keep => match end {
                LeaseEnd::Unauthorized(detail) => return Err(AgentError::Unauthorized(detail)),
                // The restart still comes: its report goes under the old lease and, refused, is
                // answered from the finished-job record when the job is offered again.
                LeaseEnd::Lost(detail) => {
                    warn!(%detail, "lease lost while waiting for the restart; still waiting");
                    waited.await;
                }
            },
        }
        Ok(JobOutcome::failed(
            format!(
                "the job started a restart of the machine, but the machine did not restart within {} s",
                timeout.as_secs()
            ),
            false,
        ))
    }

    /// Settles the job an earlier run of the agent had in hand when it stopped: by the boot
    /// marker, the machine restarted since (a restart the job started, or a crash of the
    /// machine) or only the agent did. Its reports are spooled for [`Agent::drain`].
    async fn recover(&mut self) {
        let Some(in_hand) = self.spool.in_hand().cloned() else { return };
        let job = in_hand.job;
        if self.spool.kept(job.id).is_some() {
            // Stopped between spooling its reports and letting go: they are in the spool.
            self.spool.let_go();
            return;
        }
        let now = self.executor.boot_marker();
        let span = info_span!("in hand", job_id = %job.id, kind = <&str>::from(job.kind));
        let Some(outcome) = recovered(&job, in_hand.boot.as_deref(), now.as_deref(), in_hand.answer) else {
            span.in_scope(|| {
                warn!("a job was in hand when the agent stopped, its work unfinished: left to its lease, it is offered again")
            });
            self.spool.let_go();
            return;
        };
        span.in_scope(|| match &outcome.error {
            None => warn!("the machine restarted as the job asked: reporting its answer"),
            Some(error) => warn!(%error, "a job was in hand when the agent stopped: reporting it failed"),
        });
        self.spool_finished(&job, outcome, job.lease).instrument(span).await;
    }

    /// Runs the job on the executor while heartbeats keep the lease. `None` when the lease was
    /// lost; otherwise the outcome and the lease it ran under.
    async fn work(&mut self, job: &ClaimedJob) -> Result<Option<(JobOutcome, Lease)>, AgentError> {
        let Agent { client, executor, config, conn, .. } = self;
        let lease = std::sync::Mutex::new(job.lease);
        let keep = keep_lease(client, conn, job.id, &lease, config.heartbeat_max);
        let ended = tokio::select! {
            outcome = executor.run(job) => Ok(outcome),
            end = keep => Err(end),
        };
        match ended {
            Ok(outcome) => Ok(Some((outcome, lease.into_inner().unwrap_or(job.lease)))),
            Err(LeaseEnd::Lost(detail)) => {
                conn.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                warn!(%detail, "lease lost: job dropped");
                Ok(None)
            }
            Err(LeaseEnd::Unauthorized(detail)) => Err(AgentError::Unauthorized(detail)),
        }
    }

    /// The spool entry of a job whose work finished: its result and the inventory to send
    /// first. An assessment's inventory is its result (an unreadable one fails it); after an
    /// install, rollback or reboot (done or failed half-way) the machine's recorded patch state
    /// is stale, so a fresh inventory goes before the result a rollout waits for.
    async fn finished(&mut self, job: &ClaimedJob, mut outcome: JobOutcome, lease: Lease) -> Entry {
        let assessed = job.kind == JobKind::Assess;
        let inventory = if job.kind.is_disruptive() || outcome.outcome == Outcome::Succeeded {
            match outcome.inventory.take() {
                Some(i) => Some(i),
                None => match self.executor.inventory().await {
                    Ok(i) => Some(i),
                    Err(e) if assessed => {
                        let error = format!("could not read the inventory: {e}");
                        outcome = JobOutcome::failed(error, outcome.reboot_pending);
                        None
                    }
                    Err(e) => {
                        warn!(error = %e, "could not read the inventory after the job");
                        None
                    }
                },
            }
        } else {
            None
        };
        Entry {
            job_id: job.id,
            kind: job.kind,
            lease,
            result: outcome.to_result(lease.id),
            inventory,
            inventory_decides: assessed,
            health: job.kind.is_disruptive(),
        }
    }
}

/// The outcome to report for a job found in hand at start, from the boot markers when its work
/// started (`before`) and now, and the executor's answer if it gave one before a restart it
/// started. When either marker is unknown, a restart the executor started is taken as done.
/// `None`: its work did not finish (the agent or the machine stopped under it) and nothing is
/// reported; like any job whose agent went away, it is offered again once its lease expires.
pub fn recovered(
    job: &ClaimedJob,
    before: Option<&str>,
    now: Option<&str>,
    answer: Option<JobOutcome>,
) -> Option<JobOutcome> {
    let restarted = match (before, now) {
        (Some(before), Some(now)) => boot::restarted(before, now),
        _ => answer.is_some(),
    };
    match (answer, restarted) {
        // The inventory the program read before the restart is stale: a fresh one goes first.
        (Some(answer), true) => Some(JobOutcome {
            rebooted: true,
            reboot_pending: false,
            inventory: None,
            awaits_restart: false,
            ..answer
        }),
        (Some(_), false) => Some(JobOutcome::failed(
            "the agent stopped while waiting for the restart the job started, and the machine has not restarted",
            true,
        )),
        // A reboot cut short by the restart it asked for did its work: running it again would
        // restart the machine a second time.
        (None, true) if job.kind == JobKind::Reboot => {
            Some(JobOutcome { rebooted: true, ..JobOutcome::succeeded(false) })
        }
        (None, _) => None,
    }
}

/// Heartbeats until the lease is lost or the token refused; never returns otherwise. The
/// latest lease is kept in `lease` for the result.
async fn keep_lease(
    client: &AgentClient,
    conn: &Connection,
    job: Uuid,
    lease: &std::sync::Mutex<Lease>,
    max: Duration,
) -> LeaseEnd {
    let current = || lease.lock().map(|l| *l).unwrap_or_else(|p| *p.into_inner());
    let granted = current().expires_at - Utc::now();
    loop {
        let held = current();
        tokio::time::sleep(heartbeat_interval(held.expires_at - Utc::now(), max)).await;
        let r = client.heartbeat(job, held.id).await;
        conn.note(&r);
        let renewed = match r {
            Ok(Some(new)) => new,
            // No body: assume the server granted the same length again.
            Ok(None) => Lease { id: held.id, expires_at: Utc::now() + granted.max(TimeDelta::zero()) },
            Err(ClientError::LeaseLost(d) | ClientError::NotFound(d)) => return LeaseEnd::Lost(d),
            Err(ClientError::Unauthorized(d)) => return LeaseEnd::Unauthorized(d),
            Err(e) => {
                warn!(error = %e, "heartbeat failed; trying again");
                continue;
            }
        };
        if let Ok(mut l) = lease.lock() {
            *l = renewed;
        }
    }
}
