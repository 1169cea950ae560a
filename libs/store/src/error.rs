//! Storage errors, classified by what the caller should do about them.

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A concurrent writer changed what the transaction read; trying again
    /// settles it.
    #[error("contended: {0}")]
    Contended(String),
}

impl StoreError {
    /// Whether trying again later may succeed: lost connections, pool
    /// exhaustion, serialization failures, deadlocks, a server shutting down
    /// and unique violations raced by a concurrent writer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    matches!(
                        c.as_ref(),
                        "40001" | "40P01" | "23505" | "55P03" | "57P01" | "57P02" | "57P03"
                    ) || c.starts_with("08")
                        || c.starts_with("53")
                }),
                _ => false,
            },
            Self::Contended(_) => true,
            Self::Migrate(_) | Self::NotFound | Self::Conflict(_) => false,
        }
    }
}
