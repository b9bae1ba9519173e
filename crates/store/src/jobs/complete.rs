//! Results: recording how a job ended, fenced by its lease, one by one or a batch at once.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{JobKind, JobResult, JobState};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::*;
use crate::error::StoreError;

/// What recording a result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The job ended with this result now.
    Recorded(Job),
    /// The same result was already recorded under this lease: nothing changed.
    AlreadyRecorded(Job),
}

/// Records the agent's result: the job ends `succeeded` or `failed`. Fenced by the lease: a
/// holder that lost its lease gets [`Fence::LeaseLost`]. Sending the same result again under the
/// same lease is [`Completion::AlreadyRecorded`] and changes nothing.
pub async fn complete(
    conn: &mut PgConnection,
    job_id: Uuid,
    machine_id: Uuid,
    result: &JobResult,
    now: DateTime<Utc>,
) -> Result<Result<Completion, Fence>, StoreError> {
    let state = final_state(result);
    let body = serde_json::to_value(result).map_err(|e| StoreError::Decode(e.to_string()))?;
    let row = sqlx::query_as!(
        JobRow,
        "update job set state = $4, result = $5, error = $6, finished_at = $7, updated_at = $7,
                lease_id = null, lease_expires_at = null
         where id = $1 and machine_id = $2 and lease_id = $3 and state = 'leased'
         returning id, kind, machine_id, payload, state, attempt, max_attempts, run_after, lease_id,
                   lease_expires_at, operation_id, rollout_id, result, error, created_at, finished_at",
        job_id,
        machine_id,
        result.lease_id,
        state,
        body,
        result.error,
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(Ok(Completion::Recorded(row.try_into()?)));
    }
    // Not held by this lease. The same result delivered twice (a retry after a lost response)
    // finds the job ended with exactly this result, lease id included.
    match get(&mut *conn, job_id, machine_id).await? {
        None => Ok(Err(Fence::NotFound)),
        Some(job) if job.result.as_ref() == Some(&body) => Ok(Ok(Completion::AlreadyRecorded(job))),
        Some(_) => Ok(Err(Fence::LeaseLost)),
    }
}

/// One agent's result in a [`complete_many`] batch.
#[derive(Debug, Clone, Copy)]
pub struct ResultRequest<'a> {
    /// The job.
    pub job_id: Uuid,
    /// The agent's machine (a job of another machine is never touched).
    pub machine_id: Uuid,
    /// What the agent reported, under which lease.
    pub result: &'a JobResult,
}

/// A result [`complete_many`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The job.
    pub job_id: Uuid,
    /// What it was.
    pub kind: JobKind,
    /// How it ended.
    pub state: JobState,
}

/// [`complete`] for many jobs in one statement (one round trip, one commit). Returns the jobs
/// whose result was recorded now; a result not among them was not held by its lease (already
/// recorded, lost, or not the machine's job) and goes through [`complete`] for the answer. The
/// jobs must be distinct.
pub async fn complete_many(
    db: impl PgExecutor<'_>,
    results: &[ResultRequest<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let mut jobs = Vec::with_capacity(results.len());
    let mut machines = Vec::with_capacity(results.len());
    let mut leases = Vec::with_capacity(results.len());
    let mut states = Vec::with_capacity(results.len());
    let mut bodies = Vec::with_capacity(results.len());
    let mut errors = Vec::with_capacity(results.len());
    for r in results {
        jobs.push(r.job_id);
        machines.push(r.machine_id);
        leases.push(r.result.lease_id);
        states.push(final_state(r.result).to_owned());
        bodies.push(serde_json::to_value(r.result).map_err(|e| StoreError::Decode(e.to_string()))?);
        errors.push(r.result.error.clone());
    }
    let rows = sqlx::query!(
        "update job set state = r.state, result = r.result, error = r.error, finished_at = $7,
                updated_at = $7, lease_id = null, lease_expires_at = null
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::text[])
              as r(id, machine_id, lease_id, state, result, error)
         where job.id = r.id and job.machine_id = r.machine_id and job.lease_id = r.lease_id
           and job.state = 'leased'
         returning job.id, job.kind, job.state",
        &jobs,
        &machines,
        &leases,
        &states,
        &bodies,
        &errors as &[Option<String>],
        now,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| Ok(Recorded { job_id: r.id, kind: parse(&r.kind)?, state: parse(&r.state)? }))
        .collect()
}

/// The state a job ends in with this result.
fn final_state(result: &JobResult) -> &'static str {
    match result.outcome {
        hotpatch_domain::job::Outcome::Succeeded => "succeeded",
        hotpatch_domain::job::Outcome::Failed => "failed",
    }
}
