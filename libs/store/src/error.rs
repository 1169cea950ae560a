//! Storage errors, classified by what the caller should do about them, and
//! printed with their cause: whether the connection was refused, the pool
//! timed out, the server is shutting down, or the database refused the
//! statement (which constraint, or PostgreSQL's message).

use std::fmt;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", describe(.0))]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A concurrent writer changed what the transaction read; trying again
    /// settles it.
    #[error("contended: {0}")]
    Contended(String),
    /// A secret at rest cannot be sealed or opened with the configured
    /// keys (none configured, an unknown key, an altered or moved value).
    #[error(transparent)]
    Sealed(#[from] crate::SealError),
}

/// What kind of database failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The connection failed or was lost (I/O, TLS, protocol, class 08).
    ConnectionLost,
    /// No pooled connection became free (or could be opened) in time.
    PoolTimedOut,
    /// The pool was closed.
    PoolClosed,
    /// The server is shutting down, starting up, or refuses connections
    /// for lack of resources (57P01-57P03, class 53).
    ServerUnavailable,
    /// A serialization failure, deadlock or lock timeout: retry.
    Contention,
    /// A unique, foreign-key, check or not-null constraint was violated.
    Constraint,
    /// The database refused the statement or its data (for example a NUL
    /// in text, class 22).
    Refused,
    /// Anything else (decoding, configuration, a bug).
    Other,
}

impl StoreError {
    /// The kind of database failure; `None` for errors that are not one.
    pub fn failure(&self) -> Option<DbFailure> {
        match self {
            Self::Database(e) => Some(classify(e)),
            Self::Contended(_) => Some(DbFailure::Contention),
            Self::Migrate(_) | Self::NotFound | Self::Conflict(_) | Self::Sealed(_) => None,
        }
    }

    /// Whether the database cannot be reached or cannot serve now: the
    /// connection was refused or lost, the pool timed out or was closed,
    /// the server is shutting down. Callers stop and wait for it rather
    /// than spend retries.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.failure(),
            Some(
                DbFailure::ConnectionRefused
                    | DbFailure::ConnectionLost
                    | DbFailure::PoolTimedOut
                    | DbFailure::PoolClosed
                    | DbFailure::ServerUnavailable
            )
        )
    }

    /// Whether trying again later may succeed: the database is
    /// unavailable, or the statement lost a serialization, deadlock or lock
    /// race, or a unique violation raced a concurrent writer.
    pub fn is_transient(&self) -> bool {
        self.is_unavailable()
            || matches!(self.failure(), Some(DbFailure::Contention))
            || self.sqlstate().as_deref() == Some("23505")
    }

    /// The violated constraint's name, when PostgreSQL gave one.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATE, when the server answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            Self::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

fn classify(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            DbFailure::ConnectionRefused
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => DbFailure::ConnectionLost,
        sqlx::Error::PoolTimedOut => DbFailure::PoolTimedOut,
        sqlx::Error::PoolClosed => DbFailure::PoolClosed,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "57P01" | "57P02" | "57P03" => DbFailure::ServerUnavailable,
                "40001" | "40P01" | "55P03" => DbFailure::Contention,
                c if c.starts_with("08") => DbFailure::ConnectionLost,
                c if c.starts_with("53") => DbFailure::ServerUnavailable,
                c if c.starts_with("23") => DbFailure::Constraint,
                _ => DbFailure::Refused,
            }
        }
        _ => DbFailure::Other,
    }
}

/// The message of a database error: what happened, then sqlx's own text.
fn describe(e: &sqlx::Error) -> String {
    struct Server<'a>(&'a dyn sqlx::error::DatabaseError);
    impl fmt::Display for Server<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0.code() {
                Some(code) => write!(f, "{code}: {}", self.0.message()),
                None => f.write_str(self.0.message()),
            }
        }
    }
    match (classify(e), e) {
        (DbFailure::ConnectionRefused, _) => {
            format!("database unavailable: connection refused ({e})")
        }
        (DbFailure::ConnectionLost, sqlx::Error::Database(db)) => {
            format!(
                "database unavailable: connection failure ({})",
                Server(&**db)
            )
        }
        (DbFailure::ConnectionLost, _) => format!("database unavailable: connection lost ({e})"),
        (DbFailure::PoolTimedOut, _) => format!(
            "database unavailable: pool timed out (no connection could be taken or opened in time; {e})"
        ),
        (DbFailure::PoolClosed, _) => format!("database unavailable: pool closed ({e})"),
        (DbFailure::ServerUnavailable, sqlx::Error::Database(db)) => {
            format!(
                "database unavailable: server shutting down or unable to serve ({})",
                Server(&**db)
            )
        }
        (DbFailure::Contention, sqlx::Error::Database(db)) => {
            format!("database contention ({})", Server(&**db))
        }
        (DbFailure::Constraint, sqlx::Error::Database(db)) => match db.constraint() {
            Some(c) => format!(
                "database refused: constraint {c} violated ({})",
                Server(&**db)
            ),
            None => format!("database refused: {}", Server(&**db)),
        },
        (DbFailure::Refused, sqlx::Error::Database(db)) => {
            format!("database refused: {}", Server(&**db))
        }
        _ => format!("database error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_unavailable_and_says_so() {
        let e = StoreError::from(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(e.failure(), Some(DbFailure::ConnectionRefused));
        assert!(e.is_unavailable() && e.is_transient());
        let text = e.to_string();
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains("os error 111"), "{text}");
    }

    #[test]
    fn a_pool_timeout_is_unavailable_and_says_so() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(e.is_unavailable() && e.is_transient());
        assert!(e.to_string().contains("pool timed out"), "{e}");
    }

    #[test]
    fn errors_that_are_not_the_database_are_not_unavailable() {
        for e in [StoreError::NotFound, StoreError::Conflict("x".into())] {
            assert!(!e.is_unavailable() && !e.is_transient());
            assert_eq!(e.failure(), None);
        }
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert_eq!(e.failure(), Some(DbFailure::Other));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("no rows returned"), "{e}");
    }
}
