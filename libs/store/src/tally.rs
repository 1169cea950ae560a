//! What `/metrics` shows of remediation: actions by kind and status, and
//! held retries by vendor, counted in the database (every worker's actions,
//! not one process's).

use crate::{Store, StoreError};

impl Store {
    /// How many actions there are of each kind and status (shadow ones
    /// included: they are recorded as any other), by kind then status.
    ///
    /// # Errors
    /// On database failure.
    pub async fn action_tally(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT kind, status, count(*) FROM actions GROUP BY kind, status ORDER BY kind, status",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many retries each vendor holds now (`hold` actions `PENDING`),
    /// by vendor.
    ///
    /// # Errors
    /// On database failure.
    pub async fn held_by_vendor(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT vendor, count(*) FROM actions
             WHERE kind = 'hold' AND status = 'PENDING' AND vendor IS NOT NULL
             GROUP BY vendor ORDER BY vendor",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
