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
    /// Any other database failure.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
    StoreError::Database(e)
}
