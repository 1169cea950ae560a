//! What the loop mode of `awfdrs bench` reads back once its workers are
//! done: every incident of its tenant with when it was opened, decided,
//! acted on, fired and notified, and how many of each it got, so the hops
//! are measured from the tables' own timestamps.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// One incident of the loop and what followed it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BenchLoopIncident {
    pub incident_id: Uuid,
    pub error_code: String,
    pub event_count: i64,
    /// The first failure's `occurred_at`, and the transaction that opened it.
    pub first_seen: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    /// Its decisions, and when the first was recorded.
    pub decisions: i64,
    pub decided_at: Option<DateTime<Utc>>,
    /// Its actions, the first one's kind, when it was recorded and fired.
    pub actions: i64,
    pub action_kind: Option<String>,
    pub actioned_at: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    /// Its notifications, those delivered, their tries, and the first
    /// delivery (`delivered_at`).
    pub notifications: i64,
    pub delivered: i64,
    pub tries: i64,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every incident of `tenant` with its decisions, actions and
    /// notifications.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_loop_incidents(
        &self,
        tenant: Uuid,
    ) -> Result<Vec<BenchLoopIncident>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT i.id AS incident_id, i.error_code, i.event_count, i.first_seen,
                    i.created_at AS opened_at,
                    d.n AS decisions, d.at AS decided_at,
                    a.n AS actions, a.kind AS action_kind, a.at AS actioned_at, a.fired_at,
                    n.n AS notifications, n.delivered, n.tries, n.at AS delivered_at
             FROM incidents i
             CROSS JOIN LATERAL (SELECT count(*) AS n, min(recorded_at) AS at
                                 FROM decisions WHERE incident_id = i.id) d
             CROSS JOIN LATERAL (SELECT count(*) AS n, min(kind) AS kind, min(created_at) AS at,
                                        min(fired_at) AS fired_at
                                 FROM actions WHERE incident_id = i.id) a
             CROSS JOIN LATERAL (SELECT count(*) AS n,
                                        count(*) FILTER (WHERE status = 'DELIVERED') AS delivered,
                                        coalesce(sum(tries), 0)::bigint AS tries,
                                        min(delivered_at) AS at
                                 FROM notifications WHERE incident_id = i.id) n
             WHERE i.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many events of `tenant` are stored: the one count of
    /// [`Store::bench_tally`] that a wait polls, without its joins, so the
    /// poll does not load the database it measures.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_stored(&self, tenant: Uuid) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Whether every incident of `tenant` has come to the end of the loop:
    /// `(incidents, done)`, done meaning a retry fired or every
    /// notification delivered (and at least one).
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_loop_done(&self, tenant: Uuid) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(*),
                    count(*) FILTER (WHERE
                        EXISTS (SELECT 1 FROM actions a WHERE a.incident_id = i.id
                                    AND a.kind = 'retry' AND a.fired_at IS NOT NULL)
                        OR (EXISTS (SELECT 1 FROM notifications n WHERE n.incident_id = i.id)
                            AND NOT EXISTS (SELECT 1 FROM notifications n
                                            WHERE n.incident_id = i.id
                                                AND n.status <> 'DELIVERED')))
             FROM incidents i WHERE i.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?)
    }
}
