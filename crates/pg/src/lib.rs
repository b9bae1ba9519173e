//! The embedded PostgreSQL default: with no `DATABASE_URL`, `hotpatchd` runs a PostgreSQL cluster of
//! its own from the installed server binaries, in a folder of its data directory.
//!
//! What it keeps in the data directory:
//! - `hotpatchd.lock`: an advisory lock held while a process uses the directory; it holds that
//!   process's pid, so a second `hotpatchd` can say who is in the way;
//! - `pg/`: the cluster (`initdb` on first start, reused afterwards);
//! - `pg-password`: the generated password of the `hotpatch` superuser (mode 0600);
//! - `pg.log`: the server's log.
//!
//! The server listens on 127.0.0.1 only, on a port chosen free at each start, with no Unix socket.
//! PostgreSQL refuses to run as root: when this process is root, `initdb`, `pg_ctl` and `postgres`
//! run as the `postgres` system user (or `nobody`), which must be able to reach the data directory.
//!
//! A small watchdog shell process stops the cluster when this process dies without stopping it
//! (`kill -9`), and the next start copes with a cluster still running or a stale `postmaster.pid`.

mod binaries;
mod cluster;
mod error;
mod files;
mod os_user;

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rand::distributions::{Alphanumeric, DistString};
use sqlx::{Connection, PgConnection};

pub use error::EmbeddedError;

use binaries::{find_binaries, BinSearch};
use error::IoContext;
use files::{create_private_dir, lock_data_dir, log_tail, read_trimmed, write_private_file};
use os_user::{is_root, make_reachable, run_as_user, RunAs};

/// The superuser `initdb` creates, and the name of the service's database.
const USER: &str = "hotpatch";
const DATABASE: &str = "hotpatch";
/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: u64 = 60;

/// How to run the embedded server.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Use the binaries in this directory and search nowhere else (`HOTPATCH_PG_BIN_DIR`).
    pub bin_dir: Option<PathBuf>,
    /// A throw-away cluster for tests: no fsync, and when this process ends the watchdog stops the
    /// server at once and deletes the whole data directory.
    pub ephemeral: bool,
}

/// A running embedded PostgreSQL server. Call [`EmbeddedPostgres::stop`] to shut it down; dropping
/// it without doing so asks the server to shut down without waiting.
pub struct EmbeddedPostgres {
    pg_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<RunAs>,
    watchdog: Option<Child>,
    running: bool,
    /// Held for as long as this value lives; closing it releases the data directory.
    _lock: File,
}

impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("pg_dir", &self.pg_dir)
            .field("bin_dir", &self.bin_dir)
            .field("port", &self.port)
            .field("run_as", &self.run_as.as_ref().map(|r| &r.name))
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPostgres {
    /// Starts (after creating it on first use) the cluster in `<data_dir>/pg` with default options,
    /// and makes sure the `hotpatch` database exists.
    pub async fn start(data_dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        Self::start_with(data_dir, EmbeddedOptions::default()).await
    }

    /// [`EmbeddedPostgres::start`] with options.
    pub async fn start_with(
        data_dir: &Path,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedPostgres, EmbeddedError> {
        let data_dir = data_dir.to_owned();
        let pg = tokio::task::spawn_blocking(move || Self::start_blocking(&data_dir, &options))
            .await
            .map_err(|e| EmbeddedError::Io { context: "starting PostgreSQL".into(), source: e.into() })??;
        // Dropping `pg` on error asks the server to stop.
        pg.ensure_database().await?;
        Ok(pg)
    }

    /// Starts the cluster, blocking the calling thread (initdb and pg_ctl take seconds). Unlike
    /// [`EmbeddedPostgres::start`] it does not create the `hotpatch` database.
    pub fn start_blocking(
        data_dir: &Path,
        options: &EmbeddedOptions,
    ) -> Result<EmbeddedPostgres, EmbeddedError> {
        let data_dir = std::path::absolute(data_dir)
            .context(|| format!("resolving data directory {}", data_dir.display()))?;
        create_private_dir(&data_dir)?;
        let data_dir =
            data_dir.canonicalize().context(|| format!("resolving data directory {}", data_dir.display()))?;
        let lock = lock_data_dir(&data_dir)?;

        let pg_dir = data_dir.join("pg");
        let cluster_version = read_trimmed(&pg_dir.join("PG_VERSION"));
        let (bin_dir, bin_version) =
            find_binaries(&BinSearch::from_env(options), &pg_dir, cluster_version.as_deref())?;
        tracing::debug!(bin_dir = %bin_dir.display(), version = %bin_version, "PostgreSQL binaries");

        let run_as = if is_root() { Some(run_as_user()?) } else { None };
        if let Some(user) = &run_as {
            make_reachable(&data_dir, user)?;
        }

        let password_file = data_dir.join("pg-password");
        let password = match cluster_version {
            Some(_) => read_trimmed(&password_file).ok_or_else(|| {
                EmbeddedError::Unusable(format!(
                    "the cluster in {} exists but its password file {} is missing; restore it, or remove \
                     the cluster to start from scratch",
                    pg_dir.display(),
                    password_file.display()
                ))
            })?,
            None => {
                let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
                write_private_file(&password_file, &password)?;
                password
            }
        };

        let mut pg = EmbeddedPostgres {
            pg_dir,
            bin_dir,
            port: 0,
            password,
            run_as,
            watchdog: None,
            running: false,
            _lock: lock,
        };
        if cluster_version.is_none() {
            pg.init_cluster(&data_dir, options.ephemeral)?;
        }
        let log = data_dir.join("pg.log");
        pg.prepare_log(&log)?;
        pg.stop_leftover_server()?;
        pg.start_server(&log)?;
        pg.watchdog = Some(pg.spawn_watchdog(&data_dir, options.ephemeral)?);
        Ok(pg)
    }

    /// The URL of the `hotpatch` database (created by [`EmbeddedPostgres::start`]).
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// The URL of another database of the cluster (`postgres` always exists).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{USER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Shuts the server down (fast: open sessions are ended) and waits until it has.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        tokio::task::spawn_blocking(move || self.stop_blocking())
            .await
            .map_err(|e| EmbeddedError::Io { context: "stopping PostgreSQL".into(), source: e.into() })?
    }

    /// [`EmbeddedPostgres::stop`], blocking the calling thread.
    pub fn stop_blocking(&mut self) -> Result<(), EmbeddedError> {
        if !self.running {
            self.stop_watchdog();
            return Ok(());
        }
        self.running = false;
        let stopped = self
            .pg_ctl(&["stop", "-m", "fast", "-w", "-t", &PG_CTL_TIMEOUT_SECS.to_string()])
            .and_then(|output| check("pg_ctl stop", &output));
        if let Err(e) = stopped {
            // Let go of the watchdog without killing it: it stops the server when this process exits.
            drop(self.watchdog.take());
            return Err(e);
        }
        self.stop_watchdog();
        tracing::info!(pg_dir = %self.pg_dir.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let mut conn = PgConnection::connect(&self.url_for("postgres")).await?;
        let exists: bool = sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            sqlx::query(&format!("create database {DATABASE}")).execute(&mut conn).await?;
            tracing::info!(database = DATABASE, "created the database");
        }
        conn.close().await?;
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, EmbeddedError> {
        let mut cmd = self.command("pg_ctl");
        cmd.args(args).arg("-D").arg(&self.pg_dir);
        run(&mut cmd, "pg_ctl")
    }

    /// A command for one of the binaries, run as the right user, from `/` (the current directory
    /// may be one that user cannot enter), with no stray `PG*` settings.
    fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(binary));
        cmd.current_dir("/").stdin(Stdio::null()).env("LC_ALL", "C");
        for var in ["PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    fn give_to_run_as(&self, path: &Path) -> Result<(), EmbeddedError> {
        match &self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .context(|| format!("handing {} to user {}", path.display(), user.name)),
            None => Ok(()),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop_watchdog();
        if self.running {
            // Ask for a fast shutdown without waiting for it; `stop` is the orderly way.
            let _ = self.pg_ctl(&["stop", "-m", "fast", "-W"]);
        }
    }
}

/// A port nobody listens on right now (the server binds it a moment later; a race is retried).
fn free_port() -> Result<u16, EmbeddedError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context(|| "finding a free port on 127.0.0.1".into())?;
    let port = listener.local_addr().context(|| "finding a free port on 127.0.0.1".into())?.port();
    Ok(port)
}

fn run(cmd: &mut Command, tool: &str) -> Result<Output, EmbeddedError> {
    cmd.output().context(|| format!("running {tool} ({})", cmd.get_program().to_string_lossy()))
}

fn check(tool: &str, output: &Output) -> Result<(), EmbeddedError> {
    if output.status.success() {
        return Ok(());
    }
    Err(EmbeddedError::Tool {
        tool: tool.to_owned(),
        status: output.status.to_string(),
        output: output_text(output),
    })
}

fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stdout.trim());
    }
    text
}
