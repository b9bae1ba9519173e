//! Sessions of the web console (migration 0017): created at sign-in, read on every console
//! request, deleted at sign-out. A session lives while its API token does (foreign key) with
//! the secret it was signed in with, and until its wall-clock expiry.

use chrono::{DateTime, Utc};
use hotpatch_domain::Role;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;

/// A live session, with what its token says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The token signed in with.
    pub token_id: Uuid,
    /// The token's name.
    pub token_name: String,
    /// The token's role, as it is now.
    pub role: Role,
    /// The token's own expiry (checked against the service clock by the caller).
    pub token_expires_at: Option<DateTime<Utc>>,
    /// The session's form secret.
    pub csrf: Vec<u8>,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for token `token_id`, valid for `lifetime_secs` of wall-clock time, while
/// the token's secret hash stays what it is now. `NotFound` when the token is gone.
pub async fn insert(
    db: impl PgExecutor<'_>,
    id_hash: &[u8],
    token_id: Uuid,
    csrf: &[u8],
    lifetime_secs: i64,
) -> Result<(), StoreError> {
    let inserted = sqlx::query!(
        "insert into console_session (id_hash, token_id, token_hash, csrf, expires_at)
         select $1, t.id, t.secret_hash, $3, now() + make_interval(secs => $4)
         from api_token t where t.id = $2",
        id_hash,
        token_id,
        csrf,
        lifetime_secs as f64,
    )
    .execute(db)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The live session whose secret hashes to `id_hash`: not expired, its token still there with
/// the secret it was signed in with.
pub async fn find(db: impl PgExecutor<'_>, id_hash: &[u8]) -> Result<Option<ConsoleSession>, StoreError> {
    let row = sqlx::query!(
        "select s.token_id, t.name, t.role, t.expires_at as token_expires_at, s.csrf, s.expires_at
         from console_session s join api_token t on t.id = s.token_id and t.secret_hash = s.token_hash
         where s.id_hash = $1 and s.expires_at > now()",
        id_hash,
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        let role = r
            .role
            .parse()
            .map_err(|_| StoreError::Decode(format!("api_token.role holds unknown value '{}'", r.role)))?;
        Ok(ConsoleSession {
            token_id: r.token_id,
            token_name: r.name,
            role,
            token_expires_at: r.token_expires_at,
            csrf: r.csrf,
            expires_at: r.expires_at,
        })
    })
    .transpose()
}

/// Ends the session whose secret hashes to `id_hash` (nothing when there is none).
pub async fn delete(db: impl PgExecutor<'_>, id_hash: &[u8]) -> Result<(), StoreError> {
    sqlx::query!("delete from console_session where id_hash = $1", id_hash).execute(db).await?;
    Ok(())
}

/// Deletes sessions that expired; returns how many.
pub async fn delete_expired(db: impl PgExecutor<'_>) -> Result<u64, StoreError> {
    let done = sqlx::query!("delete from console_session where expires_at <= now()").execute(db).await?;
    Ok(done.rows_affected())
}
