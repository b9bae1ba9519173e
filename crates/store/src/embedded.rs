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

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rand::distributions::{Alphanumeric, DistString};
use sqlx::{Connection, PgConnection};

/// The superuser `initdb` creates, and the name of the service's database.
const USER: &str = "hotpatch";
const DATABASE: &str = "hotpatch";
/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: u64 = 60;
/// The binaries a cluster needs; `pg_ctl` finds `postgres` next to itself.
const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// How to install the server binaries, shown when none are found.
const INSTALL_HINT: &str = "install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`; \
Fedora/RHEL: `dnf install postgresql-server`; macOS: `brew install postgresql@16`), \
or point HOTPATCH_PG_BIN_DIR at its bin directory, or set DATABASE_URL to use an existing server";

/// Why the embedded server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No directory with `initdb`, `pg_ctl` and `postgres` was found.
    #[error("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found (looked in {searched}); {INSTALL_HINT}")]
    BinariesNotFound {
        /// Where we looked, for the message.
        searched: String,
    },
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {} is in use by another hotpatchd ({holder}; lock file {}): stop it, or give this one \
         another data directory (--data-dir / HOTPATCH_DATA_DIR)",
        data_dir.display(), lock_file.display()
    )]
    Locked {
        /// The data directory.
        data_dir: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
        /// Who holds it, as far as the lock file says (`pid 1234`).
        holder: String,
    },
    /// PostgreSQL has to run as another user, who cannot reach the data directory.
    #[error(
        "PostgreSQL refuses to run as root, so it runs as the system user '{user}', who cannot reach {} \
         ({} is not searchable by that user); use a data directory it can reach, e.g. \
         HOTPATCH_DATA_DIR=/var/lib/hotpatch, or set DATABASE_URL to use an existing server",
        data_dir.display(), blocked.display()
    )]
    Inaccessible {
        /// The user PostgreSQL runs as.
        user: String,
        /// The data directory.
        data_dir: PathBuf,
        /// The first directory on the way that the user may not enter.
        blocked: PathBuf,
    },
    /// The cluster was made by another major version than the binaries found.
    #[error(
        "the cluster in {} was created by PostgreSQL {cluster} but the binaries in {} are version {binaries}; \
         install PostgreSQL {cluster} or point HOTPATCH_PG_BIN_DIR at its bin directory (or upgrade the \
         cluster with pg_upgrade)",
        pg_dir.display(), bin_dir.display()
    )]
    VersionMismatch {
        /// The cluster directory.
        pg_dir: PathBuf,
        /// Major version in its `PG_VERSION`.
        cluster: String,
        /// The binaries' directory.
        bin_dir: PathBuf,
        /// Their major version.
        binaries: String,
    },
    /// The data directory is in a state we will not touch.
    #[error("{0}")]
    Unusable(String),
    /// A PostgreSQL tool failed.
    #[error("{tool} failed ({status}): {output}")]
    Tool {
        /// The command, e.g. `initdb`.
        tool: String,
        /// Its exit status.
        status: String,
        /// What it printed (trimmed).
        output: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL did not start; the last lines of its log {}:\n{tail}", log.display())]
    Start {
        /// The server log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Creating the service's database failed.
    #[error("could not prepare the embedded database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Attaches what we were doing to an I/O error.
trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EmbeddedError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EmbeddedError> {
        self.map_err(|source| EmbeddedError::Io { context: what(), source })
    }
}

/// How to run the embedded server.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Use the binaries in this directory and search nowhere else (`HOTPATCH_PG_BIN_DIR`).
    pub bin_dir: Option<PathBuf>,
    /// A throw-away cluster for tests: no fsync, and when this process ends the watchdog stops the
    /// server at once and deletes the whole data directory.
    pub ephemeral: bool,
}

/// The user PostgreSQL runs as when this process is root.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
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

    /// `initdb` into `pg.init`, then rename it to `pg`, so a half-made cluster is never taken for one.
    fn init_cluster(&self, data_dir: &Path, ephemeral: bool) -> Result<(), EmbeddedError> {
        if self.pg_dir.exists() {
            let empty = fs::read_dir(&self.pg_dir)
                .context(|| format!("reading {}", self.pg_dir.display()))?
                .next()
                .is_none();
            if !empty {
                return Err(EmbeddedError::Unusable(format!(
                    "{} exists but is not a PostgreSQL cluster (no PG_VERSION); move it away",
                    self.pg_dir.display()
                )));
            }
            fs::remove_dir(&self.pg_dir).context(|| format!("removing empty {}", self.pg_dir.display()))?;
        }
        let init_dir = data_dir.join("pg.init");
        if init_dir.exists() {
            // Left by an initdb that was interrupted.
            fs::remove_dir_all(&init_dir).context(|| format!("removing {}", init_dir.display()))?;
        }
        fs::create_dir(&init_dir).context(|| format!("creating {}", init_dir.display()))?;
        fs::set_permissions(&init_dir, fs::Permissions::from_mode(0o700))
            .context(|| format!("setting permissions of {}", init_dir.display()))?;
        self.give_to_run_as(&init_dir)?;

        // initdb reads the password from a file, which the user it runs as must be able to read.
        let pwfile = data_dir.join("pg-password.init");
        write_private_file(&pwfile, &self.password)?;
        self.give_to_run_as(&pwfile)?;

        tracing::info!(pg_dir = %self.pg_dir.display(), "creating the embedded PostgreSQL cluster (first start)");
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&init_dir)
            .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()));
        if ephemeral {
            cmd.arg("--no-sync");
        }
        let output = run(&mut cmd, "initdb");
        let _ = fs::remove_file(&pwfile);
        check("initdb", &output?)?;

        let mut settings = String::from(
            "\n# Added by hotpatchd: the embedded server listens on 127.0.0.1 only (the port is chosen at\n\
             # each start) and makes no Unix socket.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n",
        );
        if ephemeral {
            settings.push_str(
                "# A throw-away test cluster: durability is not needed.\n\
                 fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
            );
        }
        let conf = init_dir.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .context(|| format!("writing {}", conf.display()))?;
        fs::rename(&init_dir, &self.pg_dir)
            .context(|| format!("renaming {} to {}", init_dir.display(), self.pg_dir.display()))?;
        Ok(())
    }

    /// The server log must be writable by the user the server runs as.
    fn prepare_log(&self, log: &Path) -> Result<(), EmbeddedError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
            .context(|| format!("creating {}", log.display()))?;
        self.give_to_run_as(log)
    }

    /// A previous process that was killed may have left its server running (the watchdog stops it
    /// within a second or so, but we may be quicker): we hold the lock, so nobody else owns it.
    fn stop_leftover_server(&self) -> Result<(), EmbeddedError> {
        if !self.pg_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let status = self.pg_ctl(&["status"])?;
        if !status.status.success() {
            // Not running: a stale postmaster.pid, which postgres itself clears on start.
            return Ok(());
        }
        tracing::warn!(pg_dir = %self.pg_dir.display(), "stopping a PostgreSQL left running by a previous hotpatchd");
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        let fast = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", &timeout])?;
        if fast.status.success() {
            return Ok(());
        }
        let immediate = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", &timeout])?;
        check("pg_ctl stop", &immediate)
    }

    fn start_server(&mut self, log: &Path) -> Result<(), EmbeddedError> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port()?;
            let log_start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
            let output = self.pg_ctl(&[
                "start",
                "-w",
                "-t",
                &PG_CTL_TIMEOUT_SECS.to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &format!("-p {port}"),
            ])?;
            if output.status.success() {
                self.port = port;
                self.running = true;
                tracing::info!(pg_dir = %self.pg_dir.display(), port, "embedded PostgreSQL started");
                return Ok(());
            }
            let tail = log_tail(log, log_start, 20);
            // Someone took the port between our probe and the server's bind: try another.
            if tail.contains("could not bind") && attempt < ATTEMPTS {
                tracing::debug!(port, "port taken, retrying");
                continue;
            }
            let printed = output_text(&output);
            let tail = if tail.trim().is_empty() { printed } else { tail };
            return Err(EmbeddedError::Start { log: log.to_owned(), tail });
        }
        Err(EmbeddedError::Start { log: log.to_owned(), tail: "no free port found".into() })
    }

    /// A detached `sh` that waits for this process to end, then stops the server (and, for an
    /// ephemeral cluster, deletes the data directory). It runs as the current user, who may
    /// signal the server, in its own process group so a terminal's Ctrl-C does not reach it.
    fn spawn_watchdog(&self, data_dir: &Path, ephemeral: bool) -> Result<Child, EmbeddedError> {
        let postmaster = read_trimmed(&self.pg_dir.join("postmaster.pid"))
            .and_then(|s| s.lines().next().map(str::to_owned))
            .ok_or_else(|| EmbeddedError::Unusable("the server started but left no postmaster.pid".into()))?;
        let script = if ephemeral {
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -QUIT "$2" 2>/dev/null
i=0; while kill -0 "$2" 2>/dev/null && [ "$i" -lt 30 ]; do sleep 1; i=$((i+1)); done
rm -rf "$3""#
        } else {
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -INT "$2" 2>/dev/null"#
        };
        let mut path = OsString::from("/usr/local/bin:/usr/bin:/bin");
        if let Some(p) = std::env::var_os("PATH") {
            path.push(":");
            path.push(p);
        }
        Command::new("/bin/sh")
            .args(["-c", script, "hotpatchd-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(postmaster)
            .arg(data_dir)
            .env("PATH", path)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context(|| "starting the PostgreSQL watchdog (/bin/sh)".into())
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

/// Creates `dir` (mode 0700) if it does not exist.
fn create_private_dir(dir: &Path) -> Result<(), EmbeddedError> {
    if dir.is_dir() {
        return Ok(());
    }
    // Parents with the usual permissions (the user PostgreSQL runs as must pass through them),
    // the data directory itself private.
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
        .context(|| format!("creating data directory {}", dir.display()))
}

/// Takes `<data_dir>/hotpatchd.lock` for the life of the returned file.
fn lock_data_dir(data_dir: &Path) -> Result<File, EmbeddedError> {
    let path = data_dir.join("hotpatchd.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| writeln!(file, "{}", std::process::id()))
                .context(|| format!("writing lock file {}", path.display()))?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_owned(),
                pid => format!("pid {pid}"),
            };
            Err(EmbeddedError::Locked { data_dir: data_dir.to_owned(), lock_file: path, holder })
        }
        Err(TryLockError::Error(e)) => {
            Err(EmbeddedError::Io { context: format!("locking {}", path.display()), source: e })
        }
    }
}

/// Where to look for the binaries.
#[derive(Debug, Clone)]
struct BinSearch {
    /// `HOTPATCH_PG_BIN_DIR`: only there.
    explicit: Option<PathBuf>,
    /// The `PATH`.
    path: Option<OsString>,
    /// Ask `pg_config --bindir` (found on `PATH`).
    pg_config: bool,
    /// Where Debian and Ubuntu install each major version (`<root>/<version>/bin`).
    versioned_root: PathBuf,
}

impl BinSearch {
    fn from_env(options: &EmbeddedOptions) -> BinSearch {
        let explicit = options
            .bin_dir
            .clone()
            .or_else(|| std::env::var_os("HOTPATCH_PG_BIN_DIR").filter(|v| !v.is_empty()).map(PathBuf::from));
        BinSearch {
            explicit,
            path: std::env::var_os("PATH"),
            pg_config: true,
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
        }
    }

    /// Directories to try, best first, and a description of where we looked.
    fn candidates(&self) -> (Vec<PathBuf>, String) {
        if let Some(dir) = &self.explicit {
            return (vec![dir.clone()], format!("HOTPATCH_PG_BIN_DIR={}", dir.display()));
        }
        let mut dirs = Vec::new();
        if let Some(path) = &self.path {
            for dir in std::env::split_paths(path) {
                // Debian links the tools into /usr/local/bin or the like: use the real directory,
                // where `pg_ctl` will look for `postgres`.
                if let Ok(real) = dir.join("pg_ctl").canonicalize() {
                    dirs.extend(real.parent().map(Path::to_path_buf));
                }
                dirs.push(dir);
            }
            if self.pg_config {
                for dir in std::env::split_paths(path) {
                    let pg_config = dir.join("pg_config");
                    if !pg_config.is_file() {
                        continue;
                    }
                    if let Ok(out) = Command::new(&pg_config).arg("--bindir").stdin(Stdio::null()).output() {
                        if out.status.success() {
                            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
                        }
                    }
                    break;
                }
            }
        }
        dirs.extend(versioned_dirs(&self.versioned_root));
        let searched = format!(
            "PATH{}, {}/*/bin",
            if self.pg_config { ", `pg_config --bindir`" } else { "" },
            self.versioned_root.display()
        );
        (dirs, searched)
    }
}

/// `<root>/<version>/bin` directories, highest version first.
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn has_binaries(dir: &Path) -> bool {
    BINARIES.iter().all(|b| dir.join(b).is_file())
}

/// The major version `postgres --version` reports (`postgres (PostgreSQL) 15.4 …` → `15`).
fn binaries_version(dir: &Path) -> Option<String> {
    let out = Command::new(dir.join("postgres")).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    major_version(&text)
}

fn major_version(version_output: &str) -> Option<String> {
    let version = version_output.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    // Before 10 the major version had two parts (9.6).
    if major.parse::<u32>().ok()? < 10 {
        return Some(version.split('.').take(2).collect::<Vec<_>>().join("."));
    }
    Some(major)
}

/// The first directory with all binaries; with an existing cluster, the first whose major version
/// matches it.
fn find_binaries(
    search: &BinSearch,
    pg_dir: &Path,
    cluster_version: Option<&str>,
) -> Result<(PathBuf, String), EmbeddedError> {
    let (candidates, searched) = search.candidates();
    let mut first_mismatch = None;
    for dir in candidates.iter().filter(|d| has_binaries(d)) {
        let Some(version) = binaries_version(dir) else { continue };
        match cluster_version {
            Some(cluster) if cluster != version => {
                first_mismatch.get_or_insert((dir.clone(), version));
            }
            _ => return Ok((dir.clone(), version)),
        }
    }
    match (first_mismatch, cluster_version) {
        (Some((bin_dir, binaries)), Some(cluster)) => Err(EmbeddedError::VersionMismatch {
            pg_dir: pg_dir.to_owned(),
            cluster: cluster.to_owned(),
            bin_dir,
            binaries,
        }),
        _ => Err(EmbeddedError::BinariesNotFound { searched }),
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The `postgres` system user, else `nobody`.
fn run_as_user() -> Result<RunAs, EmbeddedError> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in ["postgres", "nobody"] {
        if let Some(user) = passwd_entry(&passwd, name).or_else(|| id_entry(name)) {
            return Ok(user);
        }
    }
    Err(EmbeddedError::Unusable(
        "PostgreSQL refuses to run as root and there is neither a 'postgres' nor a 'nobody' user to run it \
         as; create a 'postgres' system user, run hotpatchd as another user, or set DATABASE_URL"
            .into(),
    ))
}

fn passwd_entry(passwd: &str, name: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(RunAs { name: name.to_owned(), uid, gid })
    })
}

/// Users that live outside `/etc/passwd` (LDAP and the like) are known to `id`.
fn id_entry(name: &str) -> Option<RunAs> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).stdin(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(RunAs { name: name.to_owned(), uid: id("-u")?, gid: id("-g")? })
}

/// Whether `user` may enter a directory with this metadata. The server runs with no supplementary
/// groups (std drops them when it changes the uid), so owner, group and other bits tell it all.
fn searchable_by(meta: &fs::Metadata, user: &RunAs) -> bool {
    let mode = meta.mode();
    if meta.uid() == user.uid {
        mode & 0o100 != 0
    } else if meta.gid() == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Makes sure `user` can reach the data directory: its parents must already let it pass (we do not
/// change directories that are not ours); the data directory itself gets `o+x` if it needs it.
fn make_reachable(data_dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    for parent in data_dir.ancestors().skip(1) {
        let meta = fs::metadata(parent).context(|| format!("reading {}", parent.display()))?;
        if !searchable_by(&meta, user) {
            return Err(EmbeddedError::Inaccessible {
                user: user.name.clone(),
                data_dir: data_dir.to_owned(),
                blocked: parent.to_owned(),
            });
        }
    }
    let meta = fs::metadata(data_dir).context(|| format!("reading {}", data_dir.display()))?;
    if !searchable_by(&meta, user) {
        let mode = (meta.mode() & 0o7777) | 0o001;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(mode))
            .context(|| format!("letting user {} into {}", user.name, data_dir.display()))?;
    }
    Ok(())
}

/// Writes a secret to a file only the owner may read, replacing it atomically.
fn write_private_file(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
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

/// The last `lines` lines written to `log` after byte offset `from`.
fn log_tail(log: &Path, from: u64, lines: usize) -> String {
    let Ok(bytes) = fs::read(log) else { return String::new() };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_nowhere(root: &Path) -> BinSearch {
        BinSearch {
            explicit: None,
            path: Some(OsString::new()),
            pg_config: false,
            versioned_root: root.to_owned(),
        }
    }

    #[test]
    fn no_binaries_anywhere_is_an_error_that_says_how_to_install_postgresql() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_binaries(&search_nowhere(empty.path()), empty.path(), None).unwrap_err();
        assert!(matches!(err, EmbeddedError::BinariesNotFound { .. }));
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn an_explicit_bin_dir_is_the_only_place_searched() {
        let empty = tempfile::tempdir().unwrap();
        let search = BinSearch {
            explicit: Some(empty.path().to_owned()),
            path: std::env::var_os("PATH"),
            pg_config: true,
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
        };
        let message = find_binaries(&search, empty.path(), None).unwrap_err().to_string();
        assert!(message.contains("HOTPATCH_PG_BIN_DIR="), "{message}");
    }

    #[test]
    fn versioned_directories_are_tried_highest_version_first() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "13", "16", "not-a-version"] {
            fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let dirs = versioned_dirs(root.path());
        let names: Vec<_> = dirs
            .iter()
            .map(|d| d.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["16", "13", "9.6"]);
    }

    #[test]
    fn major_version_is_read_from_postgres_version_output() {
        assert_eq!(
            major_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").as_deref(),
            Some("15")
        );
        assert_eq!(major_version("postgres (PostgreSQL) 17beta1").as_deref(), Some("17"));
        assert_eq!(major_version("postgres (PostgreSQL) 9.6.24").as_deref(), Some("9.6"));
        assert_eq!(major_version("nonsense"), None);
    }

    #[test]
    fn passwd_entries_give_uid_and_gid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        let user = passwd_entry(passwd, "postgres").unwrap();
        assert_eq!((user.uid, user.gid), (101, 104));
        assert!(passwd_entry(passwd, "nobody").is_none());
    }

    #[test]
    fn a_second_lock_on_a_data_dir_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
    }

    #[test]
    fn a_directory_closed_to_others_is_not_searchable_by_another_user() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let meta = fs::metadata(dir.path()).unwrap();
        let stranger = RunAs { name: "stranger".into(), uid: meta.uid() + 1, gid: meta.gid() + 1 };
        assert!(!searchable_by(&meta, &stranger));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o701)).unwrap();
        assert!(searchable_by(&fs::metadata(dir.path()).unwrap(), &stranger));
    }
}
