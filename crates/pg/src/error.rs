//! Why the embedded server could not be started or stopped.

use std::io;
use std::path::PathBuf;

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
pub(super) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EmbeddedError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, EmbeddedError> {
        self.map_err(|source| EmbeddedError::Io { context: what(), source })
    }
}
