//! Calendar feeds: read-only iCalendar URLs with a random secret in them, for calendar apps
//! that cannot send a bearer token. Only the secret's SHA-256 is stored.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;

/// A feed as listed (never with its secret, which is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// Identifier.
    pub id: Uuid,
    /// The token that made it.
    pub token_id: Uuid,
    /// The machine whose windows it serves, or
    pub machine_id: Option<Uuid>,
    /// the maintenance configuration whose windows it serves.
    pub configuration_id: Option<Uuid>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A feed to create; exactly one of `machine_id` and `configuration_id` is set.
#[derive(Debug, Clone)]
pub struct NewFeed<'a> {
    /// Identifier.
    pub id: Uuid,
    /// SHA-256 of the URL's secret.
    pub secret_hash: &'a [u8],
    /// The token making it.
    pub token_id: Uuid,
    /// A machine, or
    pub machine_id: Option<Uuid>,
    /// a maintenance configuration.
    pub configuration_id: Option<Uuid>,
}

/// What a feed's URL serves, found by its secret's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSubject {
    /// The machine, or
    pub machine_id: Option<Uuid>,
    /// the configuration.
    pub configuration_id: Option<Uuid>,
    /// When the token that made the feed stops working, if ever.
    pub token_expires_at: Option<DateTime<Utc>>,
}

/// Creates a feed. A machine or configuration that does not exist is `NotFound`.
pub async fn insert(db: impl PgExecutor<'_>, f: &NewFeed<'_>) -> Result<Feed, StoreError> {
    sqlx::query_as!(
        Feed,
        "insert into calendar_feed (id, secret_hash, token_id, machine_id, configuration_id)
         values ($1, $2, $3, $4, $5)
         returning id, token_id, machine_id, configuration_id, created_at",
        f.id,
        f.secret_hash,
        f.token_id,
        f.machine_id,
        f.configuration_id,
    )
    .fetch_one(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::from(e),
    })
}

/// A page of feeds in id order: those `owner` made, or every feed when `owner` is `None`.
pub async fn list(
    db: impl PgExecutor<'_>,
    owner: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Feed>, StoreError> {
    let rows = sqlx::query_as!(
        Feed,
        "select id, token_id, machine_id, configuration_id, created_at from calendar_feed
         where ($1::uuid is null or token_id = $1) and ($2::uuid is null or id > $2)
         order by id limit $3",
        owner,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Deletes (revokes) feed `id`, if `owner` made it (any feed when `owner` is `None`);
/// `NotFound` otherwise, so a feed of someone else's is not even said to exist.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid, owner: Option<Uuid>) -> Result<(), StoreError> {
    let done = sqlx::query!(
        "delete from calendar_feed where id = $1 and ($2::uuid is null or token_id = $2)",
        id,
        owner
    )
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What the feed whose secret hashes to `secret_hash` serves, if it exists.
pub async fn subject(db: impl PgExecutor<'_>, secret_hash: &[u8]) -> Result<Option<FeedSubject>, StoreError> {
    let row = sqlx::query_as!(
        FeedSubject,
        r#"select f.machine_id, f.configuration_id, t.expires_at as "token_expires_at"
           from calendar_feed f join api_token t on t.id = f.token_id
           where f.secret_hash = $1"#,
        secret_hash
    )
    .fetch_optional(db)
    .await?;
    Ok(row)
}
