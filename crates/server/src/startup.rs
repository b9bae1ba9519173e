//! Building and running the service: bind first, then the database (embedded or given),
//! migrations and the bootstrap admin token; then serve until the shutdown token is cancelled,
//! drain, and stop the embedded PostgreSQL last.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use hotpatch_pg::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};
use hotpatch_store::{PgPool, StoreError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{admin_token, files, shutdown};

/// Why the service could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory path is unusable.
    #[error("cannot use data directory {}: {source}", dir.display())]
    DataDir {
        /// The configured directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The embedded PostgreSQL could not be started.
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    /// The database could not be reached.
    #[error("cannot connect to the database {target}: {source}")]
    Connect {
        /// Where, without the password.
        target: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] StoreError),
    /// The bootstrap admin token could not be set up.
    #[error("cannot set up the admin token: {0}")]
    AdminToken(#[source] hotpatch_api::auth::BootstrapError),
    /// The generated admin token could not be written.
    #[error("cannot write the generated admin token to {}: {source}", dir.display())]
    AdminTokenFile {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The HTTP server failed.
    #[error("HTTP server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// The service, built and bound, ready to [`run`](Application::run).
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    state: hotpatch_api::AppState,
    pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
    shutdown: CancellationToken,
    drain_deadline: Duration,
    loops: hotpatch_app::duties::Intervals,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listen address, then gets a migrated database (starting the embedded PostgreSQL
    /// when no database URL is configured) and makes sure an admin token exists.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let settings = config.settings();
        Application::build_with(config, settings, None).await
    }

    /// [`Application::build`] with the rules' settings given, and a clock other than the
    /// system's (`hotpatchd dev` runs a fast one).
    pub async fn build_with(
        config: Config,
        settings: hotpatch_api::Settings,
        clock: Option<hotpatch_api::clock::Clock>,
    ) -> Result<Application, StartupError> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: config.listen.clone(), source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr: config.listen.clone(), source })?;
        let open_files = files::raise_open_file_limit();
        let data_dir = std::path::absolute(&config.data_dir)
            .map_err(|source| StartupError::DataDir { dir: config.data_dir.clone(), source })?;

        let (url, embedded) = match config.database_url() {
            Some(url) => {
                tracing::info!(database = %describe(url), "using the database of DATABASE_URL");
                (url.to_owned(), None)
            }
            None => {
                tracing::info!(data_dir = %data_dir.display(), "no DATABASE_URL: using the embedded PostgreSQL");
                let options = EmbeddedOptions { bin_dir: config.pg_bin_dir(), ephemeral: false };
                let pg = EmbeddedPostgres::start_with(&data_dir, options).await?;
                (pg.url(), Some(pg))
            }
        };
        match prepare_database(&url, config.db_pool_size, config.admin_token(), &data_dir).await {
            Ok(pool) => {
                let mut state = hotpatch_api::AppState::with_settings(pool.clone(), settings);
                if let Some(clock) = clock {
                    state.clock = clock;
                }
                let state = state
                    .with_status_cache(config.status_cache_mb as usize * 1024 * 1024)
                    .with_metrics_token(config.metrics_token())
                    .with_limits_behind(config.limits(open_files), config.trusted_proxies.clone());
                let router = hotpatch_api::router(state.clone());
                // One token: signals cancel it, and the services see it (`App::shutdown`).
                let shutdown = state.shutdown.clone();
                Ok(Application {
                    listener,
                    addr,
                    router,
                    state,
                    pool,
                    embedded,
                    shutdown,
                    drain_deadline: Duration::from_secs(config.shutdown_timeout_secs),
                    loops: hotpatch_app::duties::Intervals {
                        dispatch: Duration::from_millis(config.dispatch_interval_ms),
                    },
                })
            }
            Err(e) => {
                if let Some(pg) = embedded {
                    if let Err(stop) = pg.stop().await {
                        tracing::warn!(error = %stop, "could not stop the embedded PostgreSQL");
                    }
                }
                Err(e)
            }
        }
    }

    /// The address the service listens on (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service's state (the application layer, its clock and pool).
    pub fn state(&self) -> &hotpatch_api::AppState {
        &self.state
    }

    /// The token whose cancellation shuts the service down (SIGINT and SIGTERM cancel it).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until SIGINT, SIGTERM or the shutdown token; then lets open requests finish (up to
    /// a deadline), closes the pool and stops the embedded PostgreSQL.
    pub async fn run(self) -> Result<(), StartupError> {
        let Application { listener, addr, router, state, pool, embedded, shutdown, drain_deadline, loops } =
            self;
        shutdown::cancel_on_signals(shutdown.clone()).map_err(StartupError::Signals)?;
        // A clock moved before a restart (clock control, tests and demos) is the clock again.
        if let Err(e) = hotpatch_app::admin::sync_clock(&state).await {
            tracing::warn!(error = %e, "cannot read the stored service clock; using the system clock");
        }
        let mut loops = hotpatch_app::duties::spawn(&state, &shutdown, &loops);
        loops.push(tokio::spawn(forget_idle_clients(state.limits.clone(), shutdown.clone())));
        // Tests and scripts read this line to learn the port: keep its form.
        tracing::info!(%addr, "listening on {addr}");

        // `into_make_service`: serving the `Router` itself rebuilds its route table for every
        // connection (about 18 KiB each), which 10,000 long-polling agents would each keep.
        // With the peer's address, for the per-address rate limit.
        let serve = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(drain_deadline).await;
        };
        let served = tokio::select! {
            result = serve.into_future() => result.map_err(StartupError::Serve),
            () = deadline => {
                tracing::warn!(deadline = ?drain_deadline, "requests still open at the shutdown deadline: dropping them");
                Ok(())
            }
        };
        shutdown.cancel();
        // The loops stop at their next await point; each holds at most one short transaction.
        for handle in loops {
            if tokio::time::timeout(Duration::from_secs(10), handle).await.is_err() {
                tracing::warn!("a background loop did not stop within 10 s");
            }
        }
        pool.close().await;
        if let Some(pg) = embedded {
            pg.stop().await?;
        }
        tracing::info!("stopped");
        served
    }
}

/// Drops the rate-limit state of clients gone quiet, every minute, so it stays small.
async fn forget_idle_clients(
    limits: std::sync::Arc<hotpatch_api::limits::Limits>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
        }
    }
}

/// Connects, migrates, and makes sure an admin can log in.
async fn prepare_database(
    url: &str,
    pool_size: u32,
    env_token: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<PgPool, StartupError> {
    let pool = match hotpatch_store::connect_with(url, pool_size).await {
        Ok(pool) => pool,
        Err(source) => {
            let source = explain_timeout(url, source).await;
            return Err(StartupError::Connect { target: describe(url), source });
        }
    };
    hotpatch_store::migrate(&pool).await.map_err(StartupError::Migrate)?;
    tracing::info!("database migrated");
    let minted =
        hotpatch_api::auth::ensure_admin_token(&pool, env_token).await.map_err(StartupError::AdminToken)?;
    if let Some(secret) = minted {
        let path = admin_token::write(data_dir, &secret)
            .map_err(|source| StartupError::AdminTokenFile { dir: data_dir.to_owned(), source })?;
        tracing::warn!(
            path = %path.display(),
            "generated the first admin token and wrote it to {} (mode 0600): keep it somewhere safe and delete the file",
            path.display()
        );
    }
    Ok(pool)
}

/// The pool reports a server that refuses connections as "timed out"; one direct attempt says why.
async fn explain_timeout(url: &str, error: StoreError) -> StoreError {
    if !matches!(error, StoreError::Database(sqlx::Error::PoolTimedOut)) {
        return error;
    }
    match PgConnection::connect(url).await {
        Err(direct) => StoreError::Database(direct),
        Ok(conn) => {
            let _ = conn.close().await;
            error
        }
    }
}

/// `host:port/database` of a URL, for messages: never the password.
fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("")),
        Err(_) => "(DATABASE_URL is not a valid PostgreSQL URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_described_without_its_password() {
        let d = describe("postgres://user:s3cret@db.example:6543/fleet");
        assert_eq!(d, "db.example:6543/fleet");
        assert!(!describe("postgres://user:s3cret@[bad").contains("s3cret"));
    }
}
