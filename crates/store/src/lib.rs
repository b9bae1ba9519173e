//! PostgreSQL persistence: the connection pool, migrations and one module of queries per resource.
//!
//! All SQL of the service lives here and in `migrations/`.

pub mod agents;
pub mod embedded;
pub mod error;
pub mod jobs;
pub mod leader;
pub mod machines;
pub mod maintenance;
pub mod operations;
pub mod regions;
pub mod releases;
pub mod tokens;
pub mod wakeup;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use sqlx::PgPool;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Opens a connection pool to `url`.
pub async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // No ping before every checkout: it is a round trip and a query per request on the agent
        // path, and a dead connection fails the request's own query just the same (then dropped).
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(pool)
}

/// Brings the schema up to date; safe to call from several replicas at once
/// (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Checks that the database answers (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query_scalar!("select 1 as \"one!\"").fetch_one(pool).await?;
    Ok(())
}
