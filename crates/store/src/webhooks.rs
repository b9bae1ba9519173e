//! Webhooks and their deliveries (migration `0008_webhooks.sql`): the subscriptions, the fan-out
//! of change-feed events into deliveries, and the delivery queue (claim under a lease with
//! `SKIP LOCKED`, finish, retry with backoff, reap expired leases), so any number of replicas
//! deliver each event once per webhook; and each webhook's record of failures, which disables it
//! ([`health`]).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

mod health;

pub use health::{disable, enable, record_outcome};

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Identifier.
    pub id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub event_types: Vec<String>,
    /// The HMAC key deliveries are signed with.
    pub secret: String,
    /// What it is for.
    pub description: Option<String>,
    /// The token that created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it was disabled for failing (no deliveries until re-enabled).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why.
    pub disabled_reason: Option<String>,
}

/// A webhook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    /// Identifier (uuid v7, from the caller).
    pub id: Uuid,
    /// Target URL.
    pub url: &'a str,
    /// Event types.
    pub event_types: &'a [String],
    /// HMAC key.
    pub secret: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Creator.
    pub created_by: Option<Uuid>,
}

/// One delivery of one event to one webhook, with its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Identifier.
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// The change-feed event delivered.
    pub event_id: i64,
    /// Its type.
    pub event_type: String,
    /// The body sent.
    pub body: Value,
    /// `queued`, `delivering`, `succeeded` or `failed`.
    pub state: String,
    /// Attempts made (the one in progress included).
    pub attempt: i32,
    /// Attempts it gets.
    pub max_attempts: i32,
    /// When it may be tried (again).
    pub run_after: DateTime<Utc>,
    /// The receiver's status at the last attempt (`None`: no answer).
    pub last_status: Option<i32>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// Created (fan-out).
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A claimed delivery: what to send where, signed with what.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The delivery.
    pub id: Uuid,
    /// Its webhook.
    pub webhook_id: Uuid,
    /// Its event (deliveries of one webhook go in event order).
    pub event_id: i64,
    /// Its attempt number (1 = first).
    pub attempt: i32,
    /// Attempts it gets.
    pub max_attempts: i32,
    /// The event's type.
    pub event_type: String,
    /// The body to send.
    pub body: Value,
    /// Target.
    pub url: String,
    /// HMAC key.
    pub secret: String,
}

/// Writes a webhook.
pub async fn create(
    db: impl PgExecutor<'_>,
    w: &NewWebhook<'_>,
    now: DateTime<Utc>,
) -> Result<Webhook, StoreError> {
    sqlx::query_as!(
        Webhook,
        "insert into webhook (id, url, event_types, secret, description, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7)
         returning id, url, event_types, secret, description, created_by, created_at, disabled_at, disabled_reason",
        w.id,
        w.url,
        w.event_types,
        w.secret,
        w.description,
        w.created_by,
        now,
    )
    .fetch_one(db)
    .await
    .map_err(unique_violation)
}

/// Every webhook, oldest first (a deployment has a handful).
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Webhook>, StoreError> {
    let rows = sqlx::query_as!(
        Webhook,
        "select id, url, event_types, secret, description, created_by, created_at, disabled_at, disabled_reason
         from webhook order by id"
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// One webhook.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Webhook, StoreError> {
    sqlx::query_as!(
        Webhook,
        "select id, url, event_types, secret, description, created_by, created_at, disabled_at, disabled_reason
         from webhook where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Changes a webhook's URL, event types and description, each only when given (`description:
/// Some(None)` clears it).
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    url: Option<&str>,
    event_types: Option<&[String]>,
    description: Option<Option<&str>>,
    now: DateTime<Utc>,
) -> Result<Webhook, StoreError> {
    sqlx::query_as!(
        Webhook,
        "update webhook set url = coalesce($2, url), event_types = coalesce($3, event_types),
                description = case when $4 then $5 else description end, updated_at = $6
         where id = $1
         returning id, url, event_types, secret, description, created_by, created_at, disabled_at, disabled_reason",
        id,
        url,
        event_types,
        description.is_some(),
        description.flatten(),
        now,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}

/// What became of a request to deliver again.
#[derive(Debug, Clone, PartialEq)]
pub enum Redelivery {
    /// Queued again with a fresh set of attempts, due at once.
    Queued(Box<Delivery>),
    /// It is still queued or being delivered: nothing to do.
    InFlight,
    /// The webhook has no such delivery.
    Unknown,
}

/// Queues a finished delivery (succeeded or failed) of `webhook` again, due at `now`, with a fresh
/// set of attempts; the log keeps its last status and error until the next attempt.
pub async fn redeliver(
    conn: &mut PgConnection,
    webhook: Uuid,
    delivery: Uuid,
    now: DateTime<Utc>,
) -> Result<Redelivery, StoreError> {
    let queued = sqlx::query_as!(
        Delivery,
        "update webhook_delivery set state = 'queued', attempt = 0, run_after = $3, finished_at = null,
                updated_at = $3
         where id = $2 and webhook_id = $1 and state in ('succeeded', 'failed')
         returning id, webhook_id, event_id, event_type, body, state, attempt, max_attempts, run_after,
                   last_status, last_error, created_at, updated_at, finished_at",
        webhook,
        delivery,
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(d) = queued {
        return Ok(Redelivery::Queued(Box::new(d)));
    }
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from webhook_delivery where id = $2 and webhook_id = $1) as "exists!""#,
        webhook,
        delivery,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(if exists { Redelivery::InFlight } else { Redelivery::Unknown })
}

/// Deletes a webhook with its deliveries (pending ones are not sent).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!("delete from webhook where id = $1", id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The webhook's deliveries, newest first, at most `limit`.
pub async fn deliveries(
    db: impl PgExecutor<'_>,
    webhook: Uuid,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query_as!(
        Delivery,
        "select id, webhook_id, event_id, event_type, body, state, attempt, max_attempts, run_after,
                last_status, last_error, created_at, updated_at, finished_at
         from webhook_delivery where webhook_id = $1
         order by created_at desc, event_id desc limit $2",
        webhook,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Turns the change-feed events after the fan-out cursor (at most `limit`) into deliveries to
/// the webhooks subscribed to their types, and moves the cursor past them; in the caller's
/// transaction. Disabled webhooks get none. Another replica fanning out at the same time holds the cursor: this one then does
/// nothing (`None`). Otherwise the number of events read.
pub async fn fan_out(
    conn: &mut PgConnection,
    limit: i64,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> Result<Option<usize>, StoreError> {
    let Some(cursor) = sqlx::query_scalar!("select last_event_id from webhook_cursor for update skip locked")
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let read = sqlx::query!(
        r#"with batch as (
               select id, type, data from event where id > $1 order by id limit $2),
           delivered as (
               insert into webhook_delivery (id, webhook_id, event_id, event_type, body, max_attempts,
                                             run_after, created_at, updated_at)
               select gen_random_uuid(), w.id, b.id, b.type,
                      jsonb_build_object('id', b.id, 'type', b.type, 'data', b.data),
                      $3, $4, $4, $4
               from batch b join webhook w on b.type = any(w.event_types) and w.disabled_at is null
               on conflict (webhook_id, event_id) do nothing)
           select count(*) as "events!", max(id) as last from batch"#,
        cursor,
        limit,
        max_attempts,
        now,
    )
    .fetch_one(&mut *conn)
    .await?;
    if let Some(last) = read.last {
        sqlx::query!("update webhook_cursor set last_event_id = $1", last).execute(&mut *conn).await?;
    }
    Ok(Some(read.events as usize))
}

/// Claims up to `limit` due deliveries (queued, `run_after` passed, webhook enabled), at most
/// `per_webhook` of each webhook, its oldest events first, under a lease until `lease_until`,
/// skipping rows other replicas hold; each claim counts an attempt. The cap keeps one webhook's
/// backlog from filling a pass that other webhooks wait for.
pub async fn claim_due(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    per_webhook: i64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    // Row locks cannot be taken in a query with window functions: rank first, lock after.
    let rows = sqlx::query_as!(
        Claimed,
        "with ranked as (
             select d.id,
                    row_number() over (partition by d.webhook_id order by d.event_id) as rank
             from webhook_delivery d join webhook w on w.id = d.webhook_id and w.disabled_at is null
             where d.state = 'queued' and d.run_after <= $1),
         due as (
             select id from webhook_delivery
             where id in (select id from ranked where rank <= $3) and state = 'queued'
             order by run_after limit $4
             for update skip locked)
         update webhook_delivery d
         set state = 'delivering', attempt = d.attempt + 1, lease_expires_at = $2, updated_at = $1
         from due, webhook w
         where d.id = due.id and w.id = d.webhook_id
         returning d.id, d.webhook_id, d.event_id, d.attempt, d.max_attempts, d.event_type, d.body,
                   w.url, w.secret",
        now,
        lease_until,
        per_webhook,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Gives a claimed delivery back unsent (its lane stopped before it): queued again, the attempt
/// it was counted for not made.
pub async fn release(
    db: impl PgExecutor<'_>,
    id: Uuid,
    attempt: i32,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "update webhook_delivery
         set state = 'queued', attempt = attempt - 1, lease_expires_at = null, updated_at = $3
         where id = $1 and attempt = $2 and state = 'delivering'",
        id,
        attempt,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status: i32,
    },
    /// It did not: retry at `retry_at` (when attempts are left).
    Failed {
        /// The receiver's status, when it answered.
        status: Option<i32>,
        /// What went wrong.
        error: String,
        /// When to try again.
        retry_at: DateTime<Utc>,
    },
}

/// Records the end of a claimed attempt: succeeded, queued again for `retry_at`, or failed when it
/// was the last attempt. Only while the claim's lease holds (`false` otherwise: the reaper gave the
/// delivery back, and the next attempt decides).
pub async fn finish(
    db: impl PgExecutor<'_>,
    id: Uuid,
    attempt: i32,
    outcome: &Attempt,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (status, error, retry_at) = match outcome {
        Attempt::Delivered { status } => (Some(*status), None, None),
        Attempt::Failed { status, error, retry_at } => (*status, Some(error.as_str()), Some(*retry_at)),
    };
    let done = sqlx::query!(
        "update webhook_delivery
         set state = case when $4::text is null then 'succeeded'
                          when attempt >= max_attempts then 'failed' else 'queued' end,
             run_after = coalesce($5, run_after),
             lease_expires_at = null, last_status = $3, last_error = $4, updated_at = $6::timestamptz,
             finished_at = case when $4::text is null or attempt >= max_attempts then $6::timestamptz end
         where id = $1 and attempt = $2 and state = 'delivering'",
        id,
        attempt,
        status,
        error,
        retry_at,
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives deliveries whose lease expired (their replica died mid-attempt) back to the queue, or
/// fails them when that was their last attempt; how many.
pub async fn reap_expired(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "update webhook_delivery
         set state = case when attempt >= max_attempts then 'failed' else 'queued' end,
             lease_expires_at = null, last_error = 'the delivering replica stopped answering',
             finished_at = case when attempt >= max_attempts then $1 end, updated_at = $1
         where state = 'delivering' and lease_expires_at <= $1",
        now,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
