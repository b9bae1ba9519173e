//! PostgreSQL persistence: the connection pool, migrations and one module of queries per resource.
//!
//! All SQL of the service lives here and in `migrations/`.

pub mod agents;
pub mod audit;
pub mod calendar_feeds;
pub mod clock;
pub mod console_sessions;
pub mod error;
pub mod events;
pub mod installs;
pub mod jobs;
pub mod leader;
pub mod machines;
pub mod maintenance;
pub mod operations;
pub mod outage;
pub mod regions;
pub mod releases;
pub mod rollouts;
pub mod stats;
pub mod status;
pub mod tokens;
pub mod wakeup;
pub mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::StoreError;
pub use sqlx::PgPool;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Connections of a pool opened by [`connect`].
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// Opens a connection pool of [`DEFAULT_POOL_SIZE`] connections to `url`.
pub async fn connect(url: &str) -> Result<PgPool, StoreError> {
    connect_with(url, DEFAULT_POOL_SIZE).await
}

/// Opens a connection pool of at most `max_connections` connections to `url`.
pub async fn connect_with(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = connect_options(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        // No ping before every checkout (a round trip per request on the agent path); only
        // where a connection may have died unseen (see `outage`).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if outage::should_ping(meta.idle_for) {
                    // A dead connection is dropped and the pool opens another.
                    use sqlx::Connection as _;
                    return Ok(conn.ping().await.is_ok());
                }
                Ok(true)
            })
        })
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// How long any of our transactions may sit idle before PostgreSQL ends it: no request or duty
/// waits that long between statements, so only a frozen or cut-off process would, and its row
/// locks must not hold up everyone else (leaders get a shorter one, see [`leader::IDLE_TIMEOUT`]).
pub const IDLE_IN_TRANSACTION: &str = "60s";

/// The connection options of `url`. A server on this machine (loopback address or Unix socket)
/// is reached without TLS unless the URL asks for it with `sslmode`: sqlx's default `prefer`
/// would encrypt every query on loopback, which protects nothing and costs CPU on every request.
///
/// Sessions end a transaction left idle for [`IDLE_IN_TRANSACTION`]. JIT compilation is off
/// for our sessions: our queries are short, and PostgreSQL's estimate for
/// a prepared statement over an id array (a page of patch statuses) can pass `jit_above_cost`,
/// after which every execution spends milliseconds compiling in LLVM what runs in microseconds.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)?
        .options([("jit", "off"), ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
    let asks_for_ssl = url.contains("sslmode=") || url.contains("ssl-mode=");
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    Ok(if local && !asks_for_ssl { options.ssl_mode(PgSslMode::Disable) } else { options })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The SSL mode as text (`PgSslMode` has no `PartialEq`).
    fn ssl(url: &str) -> String {
        format!("{:?}", connect_options(url).map(|o| o.get_ssl_mode()).unwrap_or(PgSslMode::Require))
    }

    #[test]
    fn a_local_server_is_reached_without_tls_unless_the_url_asks_for_it() {
        assert_eq!(ssl("postgres://u@127.0.0.1:5432/db"), "Disable");
        assert_eq!(ssl("postgres://u@localhost/db"), "Disable");
        assert_eq!(ssl("postgres://u@[::1]:5432/db"), "Disable");
        assert_eq!(ssl("postgres://u@127.0.0.1/db?sslmode=require"), "Require");
    }

    #[test]
    fn a_remote_server_keeps_the_default_of_preferring_tls() {
        assert_eq!(ssl("postgres://u@db.example:5432/db"), "Prefer");
        assert_eq!(ssl("postgres://u@10.0.0.5/db"), "Prefer");
    }
}
