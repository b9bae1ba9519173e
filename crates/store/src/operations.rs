//! Operations (what a client asked for, e.g. "assess these machines now"): creation with an
//! optional idempotency key, the machines a selector names, and the view derived from its jobs.

use chrono::{DateTime, Utc};
use hotpatch_domain::operation::{
    MachineResult, Operation, OperationFilter, OperationKind, OperationStatus, OperationSummary, Selector,
    StateCounts,
};
use serde_json::json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::StoreError;
use crate::jobs::parse;

/// An operation to create.
#[derive(Debug, Clone)]
pub struct NewOperation<'a> {
    /// What it does.
    pub kind: OperationKind,
    /// The request as received.
    pub request: &'a serde_json::Value,
    /// The token that asked.
    pub created_by: Option<Uuid>,
    /// `Idempotency-Key` and the SHA-256 of the request it came with.
    pub idempotency: Option<(&'a str, [u8; 32])>,
    /// Its creation instant.
    pub now: DateTime<Utc>,
}

/// What creating an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new operation: the caller enqueues its jobs in the same transaction.
    New(Uuid),
    /// The idempotency key was used before with the same request: this is its operation.
    Replayed(Uuid),
    /// The idempotency key was used before with another request.
    KeyReused(Uuid),
}

/// Creates an operation, or finds the one its idempotency key already made.
///
/// Two concurrent requests with one key serialize on the unique index: the second waits for the
/// first's transaction and then sees its operation.
pub async fn create(conn: &mut PgConnection, op: &NewOperation<'_>) -> Result<Created, StoreError> {
    let id = Uuid::now_v7();
    let kind: &str = op.kind.into();
    let (key, hash) = match op.idempotency {
        Some((key, hash)) => (Some(key), Some(hash.to_vec())),
        None => (None, None),
    };
    let inserted = sqlx::query_scalar!(
        "insert into operation (id, kind, request, created_by, idempotency_key, request_hash, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7)
         on conflict (created_by, idempotency_key) where idempotency_key is not null do nothing
         returning id",
        id,
        kind,
        op.request,
        op.created_by,
        key,
        hash,
        op.now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok(Created::New(id));
    }
    let existing = sqlx::query!(
        "select id, request_hash as \"request_hash!\" from operation
         where created_by is not distinct from $1 and idempotency_key = $2",
        op.created_by,
        key,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(if Some(existing.request_hash) == hash {
        Created::Replayed(existing.id)
    } else {
        Created::KeyReused(existing.id)
    })
}

/// The selector's labels as `selector_matches()` takes them: no map or an empty one is NULL,
/// "any labels", which the inlined function folds away instead of testing `labels @> '{}'`.
pub(crate) fn selector_labels(selector: &Selector) -> Option<serde_json::Value> {
    selector.labels.as_ref().filter(|l| !l.is_empty()).map(|l| json!(l))
}

/// The machines a selector names, in id order (at most `limit`). Every given part must match;
/// `{}` names every machine.
pub async fn select_machines(
    db: impl PgExecutor<'_>,
    selector: &Selector,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let labels = selector_labels(selector);
    let ids = sqlx::query_scalar!(
        "select id from machine
         where selector_matches(id, labels, region, $1, $2, $3)
         order by id limit $4",
        selector.machine_ids.as_deref(),
        labels,
        selector.regions.as_deref(),
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// Of `ids`, those that are not machines.
pub async fn unknown_machines(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let ids = sqlx::query_scalar!(
        "select t.id as \"id!\" from unnest($1::uuid[]) as t(id)
         where not exists (select 1 from machine m where m.id = t.id)",
        ids,
    )
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// The operation as clients see it: status and counts derived from its jobs, and up to
/// `max_results` per-machine results (failures first).
pub async fn get(db: &mut PgConnection, id: Uuid, max_results: i64) -> Result<Operation, StoreError> {
    let head = sqlx::query!(
        r#"select o.kind, o.created_at,
                  count(j.id) filter (where j.state = 'queued') as "queued!",
                  count(j.id) filter (where j.state = 'leased') as "leased!",
                  count(j.id) filter (where j.state = 'succeeded') as "succeeded!",
                  count(j.id) filter (where j.state = 'failed') as "failed!",
                  count(j.id) filter (where j.state = 'canceled') as "canceled!",
                  count(j.id) filter (where j.state = 'expired') as "expired!",
                  max(j.finished_at) as finished_at
           from operation o
           left join operation_job oj on oj.operation_id = o.id
           left join job j on j.id = oj.job_id
           where o.id = $1
           group by o.id"#,
        id,
    )
    .fetch_optional(&mut *db)
    .await?
    .ok_or(StoreError::NotFound)?;
    let counts = StateCounts {
        queued: head.queued,
        leased: head.leased,
        succeeded: head.succeeded,
        failed: head.failed,
        canceled: head.canceled,
        expired: head.expired,
    };
    let rows = sqlx::query!(
        "select oj.machine_id, j.id as job_id, j.state, j.error, j.finished_at
         from operation_job oj join job j on j.id = oj.job_id
         where oj.operation_id = $1
         order by (j.state = 'failed') desc, (j.state = 'expired') desc, (j.state = 'canceled') desc,
                  j.finished_at nulls last, oj.machine_id
         limit $2",
        id,
        max_results,
    )
    .fetch_all(&mut *db)
    .await?;
    let results = rows
        .into_iter()
        .map(|r| {
            Ok(MachineResult {
                machine_id: r.machine_id,
                job_id: r.job_id,
                state: parse(&r.state)?,
                error: r.error,
                finished_at: r.finished_at,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let machines = counts.machines();
    let status = OperationStatus::from_counts(&counts);
    Ok(Operation {
        id,
        kind: parse(&head.kind)?,
        status,
        machines,
        results_truncated: (results.len() as i64) < machines.total,
        results,
        warnings: vec![],
        created_at: head.created_at,
        finished_at: status.is_final().then_some(head.finished_at).flatten(),
    })
}

/// A cheap fingerprint of an operation's progress (jobs per state), for long-polls that wait for
/// a change without rebuilding the whole view on every wake-up.
pub async fn progress(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<(i64, i64, i64)>, StoreError> {
    let row = sqlx::query!(
        r#"select count(j.id) filter (where j.state = 'queued') as "queued!",
                  count(j.id) filter (where j.state = 'leased') as "leased!",
                  count(j.id) filter (where j.state in ('succeeded', 'failed', 'canceled', 'expired')) as "done!"
           from operation o
           left join operation_job oj on oj.operation_id = o.id
           left join job j on j.id = oj.job_id
           where o.id = $1 group by o.id"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.queued, r.leased, r.done)))
}

/// Operations newest first, after the cursor `before` (an id of the previous page), each with
/// its status and counts (at most `limit`). The status filter is `operation_status()` over each
/// operation's jobs: a walk down the primary key that stops at `limit` matches.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &OperationFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OperationSummary>, StoreError> {
    let kind: Option<&'static str> = filter.kind.map(Into::into);
    let status: Option<&'static str> = filter.status.map(Into::into);
    let rows = sqlx::query!(
        r#"select o.id, o.kind, o.created_by, o.created_at, o.canceled_at,
                  c.queued as "queued!", c.leased as "leased!", c.succeeded as "succeeded!",
                  c.failed as "failed!", c.canceled as "canceled!", c.expired as "expired!", c.finished_at
           from operation o
           cross join lateral (
               select count(*) filter (where j.state = 'queued') as queued,
                      count(*) filter (where j.state = 'leased') as leased,
                      count(*) filter (where j.state = 'succeeded') as succeeded,
                      count(*) filter (where j.state = 'failed') as failed,
                      count(*) filter (where j.state = 'canceled') as canceled,
                      count(*) filter (where j.state = 'expired') as expired,
                      max(j.finished_at) as finished_at
               from operation_job oj join job j on j.id = oj.job_id
               where oj.operation_id = o.id) c
           where ($1::uuid is null or o.id < $1)
             and ($2::text is null or o.kind = $2)
             and ($3::uuid is null or o.created_by = $3)
             and ($4::text is null
                  or operation_status(c.queued, c.leased, c.succeeded, c.failed, c.canceled, c.expired) = $4)
           order by o.id desc
           limit $5"#,
        before,
        kind,
        filter.created_by,
        status,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let counts = StateCounts {
                queued: r.queued,
                leased: r.leased,
                succeeded: r.succeeded,
                failed: r.failed,
                canceled: r.canceled,
                expired: r.expired,
            };
            let status = OperationStatus::from_counts(&counts);
            Ok(OperationSummary {
                id: r.id,
                kind: parse(&r.kind)?,
                status,
                machines: counts.machines(),
                created_by: r.created_by,
                created_at: r.created_at,
                canceled_at: r.canceled_at,
                finished_at: status.is_final().then_some(r.finished_at).flatten(),
            })
        })
        .collect()
}

/// Locks the operation's row until the transaction ends (a cancel and a concurrent one take
/// turns); `false` when there is no such operation.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<bool, StoreError> {
    let found = sqlx::query_scalar!("select id from operation where id = $1 for update", id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}
