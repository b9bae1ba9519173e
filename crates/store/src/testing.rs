//! Test support (feature `testing`): a fresh, migrated database per test.
//!
//! The server is `DATABASE_URL` when it is set; otherwise one embedded throw-away cluster per test
//! process, in a temporary directory that a watchdog deletes when the process ends. Only the
//! server's address is shared between tests: every test gets its own database and its own pool,
//! so tests on different tokio runtimes (each `#[tokio::test]` has one) never share a connection.
//!
//! Databases are named `hotpatch_test_<unix seconds>_<pid>_<n>` and dropped when their
//! [`TestDb`] is dropped, unless the test panicked (kept for a look). On a `DATABASE_URL` server,
//! test databases older than an hour are swept at the first use in each process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection, PgPool};

use hotpatch_pg::{EmbeddedOptions, EmbeddedPostgres};

/// Prefix of every test database's name.
const PREFIX: &str = "hotpatch_test_";
/// Test databases on a shared server older than this are dropped.
const SWEEP_AFTER: Duration = Duration::from_secs(3600);

/// A database of its own for one test.
pub struct TestDb {
    /// A pool on it (migrated), bound to the calling test's runtime.
    pub pool: PgPool,
    /// Its URL, e.g. to give to a `hotpatchd` started by the test.
    pub url: String,
    name: String,
    maintenance_url: String,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates a new uniquely named database, migrates it and opens a pool on it.
///
/// Panics (it is for tests) when no server can be had, with the reason.
pub async fn fresh_db() -> TestDb {
    let maintenance_url = server_url().await;
    let name = next_name();
    let mut conn = PgConnection::connect(&maintenance_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {e}"));
    sqlx::query(&format!(r#"create database "{name}""#))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    let _ = conn.close().await;

    let url = with_database(&maintenance_url, &name);
    let pool =
        crate::connect(&url).await.unwrap_or_else(|e| panic!("connecting to test database {name}: {e}"));
    crate::migrate(&pool).await.unwrap_or_else(|e| panic!("migrating test database {name}: {e}"));
    TestDb { pool, url, name, maintenance_url }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database kept for inspection: {}", self.name);
            return;
        }
        // Drop can't await and may run on the test's runtime: do it on a thread of its own.
        // `with (force)` ends the connections the test's pool still holds.
        let (url, name) = (self.maintenance_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let _ = drop_database(&mut conn, &name).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(r#"drop database if exists "{name}" with (force)"#)).execute(conn).await?;
    Ok(())
}

fn next_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{secs}_{}_{n}", std::process::id())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(database);
            parsed.into()
        }
        Err(e) => panic!("DATABASE_URL is not a valid URL: {e}"),
    }
}

/// The maintenance URL (database `postgres`) of the server tests use, set up once per process.
async fn server_url() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    static SWEPT: Mutex<bool> = Mutex::new(false);

    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) {
        let url = with_database(&url, "postgres");
        let first = {
            let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
            !std::mem::replace(&mut *swept, true)
        };
        if first {
            sweep_old_databases(&url).await;
        }
        return url;
    }
    // Starting the cluster blocks (initdb, pg_ctl): off the runtime's thread.
    let server = tokio::task::spawn_blocking(|| {
        SERVER.get_or_init(|| start_test_cluster().map_err(|e| e.to_string())).clone()
    })
    .await
    .unwrap_or_else(|e| panic!("starting the test PostgreSQL cluster: {e}"));
    server.unwrap_or_else(|e| panic!("could not start an embedded PostgreSQL for tests: {e}"))
}

/// One throw-away cluster for the whole test process. It is never dropped: the watchdog stops
/// it and deletes its directory when the process ends.
fn start_test_cluster() -> Result<String, hotpatch_pg::EmbeddedError> {
    static CLUSTER: OnceLock<EmbeddedPostgres> = OnceLock::new();
    let dir = std::env::temp_dir().join(format!(
        "hotpatch-test-pg-{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    ));
    let options = EmbeddedOptions { ephemeral: true, ..EmbeddedOptions::default() };
    let cluster = EmbeddedPostgres::start_blocking(&dir, &options)?;
    let url = cluster.url_for("postgres");
    let _ = CLUSTER.set(cluster);
    Ok(url)
}

/// Drops test databases that earlier runs left on a shared server (older than [`SWEEP_AFTER`]).
async fn sweep_old_databases(maintenance_url: &str) {
    let Ok(mut conn) = PgConnection::connect(maintenance_url).await else { return };
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for name in names {
        let created = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next()?.parse::<u64>().ok());
        if created.is_some_and(|secs| now.saturating_sub(secs) > SWEEP_AFTER.as_secs()) {
            let _ = drop_database(&mut conn, &name).await;
        }
    }
    let _ = conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "hotpatch_test_1"),
            "postgres://u:p@127.0.0.1:5432/hotpatch_test_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@localhost", "x"), "postgres://u@localhost/x");
    }

    #[test]
    fn test_database_names_are_unique_and_carry_their_creation_time() {
        let (a, b) = (next_name(), next_name());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        let secs: u64 = a.strip_prefix(PREFIX).unwrap().split('_').next().unwrap().parse().unwrap();
        assert!(secs > 1_700_000_000);
    }
}
