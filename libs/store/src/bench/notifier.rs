//! What the notifier mode of `awfdrs bench` reads back: how its
//! notifications ended and how many tries they took.

use uuid::Uuid;

use crate::{Store, StoreError};

/// The notifications of one tenant by status, with their tries.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BenchNotificationOutcome {
    pub status: String,
    pub notifications: i64,
    pub tries: i64,
}

impl Store {
    /// `tenant`'s notifications, counted by status, with the tries each
    /// status took, in status order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_notification_outcomes(
        &self,
        tenant: Uuid,
    ) -> Result<Vec<BenchNotificationOutcome>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT status, count(*) AS notifications, coalesce(sum(tries), 0)::bigint AS tries
             FROM notifications WHERE tenant_id = $1 GROUP BY status ORDER BY status",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }
}
