//! What the storm mode of `awfdrs bench` watches and reads back: how far
//! the outage's incidents have come, the vendor's breaker transitions, and
//! when each retry fired, so whether any went into an open breaker and how
//! the released ones were paced is read from the tables themselves.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// How far the incidents of a storm's tenants have come.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct BenchStormProgress {
    pub incidents: i64,
    /// Incidents with at least one action recorded.
    pub actioned: i64,
    pub resolved: i64,
    /// Hold actions, and those not ended (released, escalated or cancelled).
    pub holds: i64,
    pub holds_open: i64,
    /// Retries fired.
    pub fired: i64,
}

impl Store {
    /// Where the incidents of `tenants` stand.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_storm_progress(
        &self,
        tenants: &[Uuid],
    ) -> Result<BenchStormProgress, StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM incidents WHERE tenant_id = ANY($1)) AS incidents,
                    (SELECT count(DISTINCT incident_id) FROM actions
                     WHERE tenant_id = ANY($1)) AS actioned,
                    (SELECT count(*) FROM incidents
                     WHERE tenant_id = ANY($1) AND status = 'RESOLVED') AS resolved,
                    count(*) FILTER (WHERE kind = 'hold') AS holds,
                    count(*) FILTER (WHERE kind = 'hold'
                                     AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))
                        AS holds_open,
                    count(*) FILTER (WHERE kind = 'retry' AND fired_at IS NOT NULL) AS fired
             FROM actions WHERE tenant_id = ANY($1)",
        )
        .bind(tenants)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The breaker transitions of `vendor`, oldest first: when, and to what.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_breaker_transitions(
        &self,
        vendor: &str,
    ) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT at, to_state FROM breaker_transitions WHERE vendor = $1 ORDER BY at, id",
        )
        .bind(vendor)
        .fetch_all(&self.pool)
        .await?)
    }

    /// When each retry of `tenants` fired, earliest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_retries_fired(
        &self,
        tenants: &[Uuid],
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT fired_at FROM actions
             WHERE tenant_id = ANY($1) AND kind = 'retry' AND fired_at IS NOT NULL
             ORDER BY fired_at",
        )
        .bind(tenants)
        .fetch_all(&self.pool)
        .await?)
    }
}
