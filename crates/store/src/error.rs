//! The store's error type.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row that must be unique already exists (constraint name kept for the message).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// Any other database failure.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}
