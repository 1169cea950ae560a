//! Decisions: recorded once per incident and trigger, append-only; and the
//! incident's move to `ANALYZING` that goes with the first one.

use awfdrs_domain::IncidentStatus;
use awfdrs_domain::decision::{ActionKind, DecisionV1};
use uuid::Uuid;

use crate::{Store, StoreError, Work};

/// The `decisions.recommended` value of an action kind.
const fn recommended(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Retry => "retry",
        ActionKind::Hold => "hold",
        ActionKind::Escalate => "escalate",
        ActionKind::None => "none",
    }
}

impl Work {
    /// Records `decision` unless one with its incident and trigger exists
    /// (a redelivery, or a competing analyzer that got there first).
    /// Returns whether this transaction recorded it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_decision(&mut self, decision: &DecisionV1) -> Result<bool, StoreError> {
        let recorded: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO decisions (id, tenant_id, incident_id, trigger, supersedes, engine,
                                    engine_version, recommended, confidence, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(decision.id)
        .bind(decision.tenant_id)
        .bind(decision.incident_id)
        .bind(&decision.trigger)
        .bind(decision.supersedes)
        .bind(&decision.engine.name)
        .bind(&decision.engine.version)
        .bind(recommended(decision.recommended_action.action))
        .bind(decision.confidence.clamp(0.0, 1.0) as f32)
        .bind(sqlx::types::Json(decision))
        .bind(decision.created_at)
        .fetch_optional(self.conn())
        .await?;
        Ok(recorded.is_some())
    }

    /// Moves a `NEW` incident to `ANALYZING`, with a timeline entry by
    /// `actor` for `reason`. An incident in any other state is left as it
    /// is. Returns whether it moved.
    ///
    /// # Errors
    /// On database failure.
    pub async fn start_analysis(
        &mut self,
        tenant: Uuid,
        incident: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let moved: Option<Uuid> = sqlx::query_scalar(
            "UPDATE incidents SET status = $3, analyzing_at = now(), updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = $4
             RETURNING id",
        )
        .bind(tenant)
        .bind(incident)
        .bind(IncidentStatus::Analyzing.as_str())
        .bind(IncidentStatus::New.as_str())
        .fetch_optional(self.conn())
        .await?;
        if moved.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO incident_transitions (tenant_id, incident_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(incident)
        .bind(IncidentStatus::New.as_str())
        .bind(IncidentStatus::Analyzing.as_str())
        .bind(actor)
        .bind(reason)
        .execute(self.conn())
        .await?;
        Ok(true)
    }

    /// Stores the incident's message vector and its LSH keys, for later
    /// similarity searches.
    ///
    /// # Errors
    /// On database failure.
    pub async fn store_message_vector(
        &mut self,
        tenant: Uuid,
        incident: Uuid,
        vector: &[f32],
        keys: &[i32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE incidents SET message_vector = $3, message_lsh = $4
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(incident)
        .bind(vector)
        .bind(keys)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    /// The decisions about `incident`, oldest first, as recorded.
    ///
    /// # Errors
    /// On database failure.
    pub async fn decisions(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT body FROM decisions
             WHERE incident_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)
             ORDER BY recorded_at, id",
        )
        .bind(incident)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The decision `id` as recorded, if it is.
    ///
    /// # Errors
    /// On database failure.
    pub async fn decision(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT body FROM decisions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The open incidents of `vendor`, in every tenant, as (tenant,
    /// incident): those a breaker opening concerns. At most 1,000, oldest
    /// first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn open_incidents_of_vendor(
        &self,
        vendor: &str,
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, id FROM incidents
             WHERE vendor = $1 AND status <> $2
             ORDER BY first_seen, id LIMIT 1000",
        )
        .bind(vendor)
        .bind(IncidentStatus::Resolved.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest decision about `incident`: the one a new one supersedes.
    ///
    /// # Errors
    /// On database failure.
    pub async fn latest_decision(
        &self,
        tenant: Uuid,
        incident: Uuid,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM decisions WHERE tenant_id = $1 AND incident_id = $2
             ORDER BY recorded_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(incident)
        .fetch_optional(&self.pool)
        .await?)
    }
}
