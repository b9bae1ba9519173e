//! Sessions of the web console as use cases: open one for a verified token (sign-in), find the
//! live session of a cookie, close it (sign-out).
//!
//! The cookie carries a 256-bit random secret; only its SHA-256 is stored. Each session has its
//! own form secret (CSRF). A session ends with its token (revoked, expired on the service clock,
//! or a bootstrap token whose secret changed) or after [`SESSION_LIFETIME_SECS`] of wall time.

use hotpatch_domain::Role;
use hotpatch_store::console_sessions;
use uuid::Uuid;

use crate::error::AppError;
use crate::secrets::{hash, random};
use crate::App;

/// How long a session lasts after sign-in: a working day.
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;

/// A session just opened: the cookie's secret and the form secret, both shown to this browser only.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The cookie value (random, 256 bits).
    pub secret: [u8; 32],
    /// The form secret (random, 256 bits).
    pub csrf: [u8; 32],
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token signed in with.
    pub token_id: Uuid,
    /// Its name.
    pub token_name: String,
    /// Its role now.
    pub role: Role,
    /// The form secret.
    pub csrf: Vec<u8>,
}

/// Opens a session for token `token_id`, which the caller has just verified; agent tokens are
/// refused (they are bound to a machine, not a person). Expired sessions are swept on the way.
pub async fn open(app: &App, token_id: Uuid, role: Role) -> Result<Opened, AppError> {
    if role == Role::Agent {
        return Err(AppError::field("token", "agent tokens cannot sign in to the console"));
    }
    let opened = Opened { secret: random(), csrf: random() };
    let swept = console_sessions::delete_expired(&app.pool).await?;
    console_sessions::insert(&app.pool, &hash(&opened.secret), token_id, &opened.csrf, SESSION_LIFETIME_SECS)
        .await
        .map_err(|e| match e {
            hotpatch_store::StoreError::NotFound => AppError::field("token", "the token was revoked"),
            e => e.into(),
        })?;
    tracing::info!(token_id = %token_id, swept, "console session opened");
    Ok(opened)
}

/// The live session of cookie secret `secret`, if any.
pub async fn find(app: &App, secret: &[u8]) -> Result<Option<Session>, AppError> {
    let Some(s) = console_sessions::find(&app.pool, &hash(secret)).await? else {
        return Ok(None);
    };
    // The token's own expiry is on the service clock, as the API checks it.
    if s.token_expires_at.is_some_and(|t| t <= app.clock.now()) {
        return Ok(None);
    }
    Ok(Some(Session { token_id: s.token_id, token_name: s.token_name, role: s.role, csrf: s.csrf }))
}

/// Ends the session of cookie secret `secret` (nothing when there is none).
pub async fn close(app: &App, secret: &[u8]) -> Result<(), AppError> {
    console_sessions::delete(&app.pool, &hash(secret)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let (a, b) = (random(), random());
        assert_ne!(a, b);
        assert_ne!(hash(&a), a);
        assert_eq!(hash(&a), hash(&a));
    }
}
