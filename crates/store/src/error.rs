//! The store's error type and the mapping of constraint violations onto it.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; carries the constraint name and PostgreSQL's detail.
    #[error("conflict on {constraint}: {detail}")]
    Conflict {
        /// Name of the violated constraint, e.g. `machine_name_key`.
        constraint: String,
        /// PostgreSQL's detail, e.g. `Key (name)=(web-1) already exists.`
        detail: String,
    },
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A stored value could not be read back into the domain types.
    #[error("stored data is invalid: {0}")]
    Decode(String),
    /// Any other database failure (build it with `StoreError::from`, which notes connection
    /// failures for [`crate::outage`]).
    #[error(transparent)]
    Database(sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_connection_failure(&e) {
            crate::outage::note_failure();
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Whether the database could not be reached or dropped the connection (a restart, an
    /// administrator's `pg_terminate_backend`, a full server): retrying later works, and the
    /// caller did nothing wrong.
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_connection_failure(e))
    }
}

/// SQLSTATE classes and codes that mean "the connection or the server", not "the request":
/// 08 connection exception, 57P01–57P03 shutdown and startup, 53300 too many connections, 25P03
/// a session ended for sitting idle in its transaction.
fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "25P03")
        }),
        // A server that went away mid-message leaves the protocol out of step.
        sqlx::Error::Protocol(message) => message.contains("closed") || message.contains("unexpected"),
        _ => false,
    }
}

impl From<hotpatch_domain::rollout::UnknownState> for StoreError {
    fn from(e: hotpatch_domain::rollout::UnknownState) -> Self {
        StoreError::Decode(e.to_string())
    }
}

/// Turns a unique violation into `Conflict`; every other error passes through.
pub(crate) fn unique_violation(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let constraint = db.constraint().unwrap_or_default().to_owned();
            let detail = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .unwrap_or_default()
                .to_owned();
            return StoreError::Conflict { constraint, detail };
        }
    }
    StoreError::from(e)
}
