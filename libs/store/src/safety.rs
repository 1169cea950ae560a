//! The safety layer's records: circuit breaker transitions (the audit trail
//! of the vendors' breakers, whose live state is in JetStream KV) and retry
//! attempts (what the hard limits count).
//!
//! Breaker transitions are the one tenant-less record: a vendor's breaker is
//! shared by every tenant (see the migration). The per-vendor hourly retry
//! count is, for the same reason, the one count across tenants.

use awfdrs_safety::breaker::BreakerState;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::states::StateColumn;
use crate::{Store, StoreError};

/// A breaker transition to record.
#[derive(Debug, Clone)]
pub struct NewBreakerTransition {
    pub vendor: String,
    pub from_state: BreakerState,
    pub to_state: BreakerState,
    pub at: DateTime<Utc>,
    /// Who or what made it: `detector:<worker>`, `clock:<worker>`,
    /// `probe:<holder>`, `operator:<name>`.
    pub actor: String,
    pub reason: String,
    pub failure_rate: Option<f64>,
    /// Revision of the KV write that made it.
    pub kv_revision: i64,
}

/// A recorded breaker transition.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BreakerTransitionRow {
    pub id: i64,
    pub vendor: String,
    #[sqlx(try_from = "StateColumn<BreakerState>")]
    pub from_state: BreakerState,
    #[sqlx(try_from = "StateColumn<BreakerState>")]
    pub to_state: BreakerState,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    pub failure_rate: Option<f64>,
    pub kv_revision: i64,
    pub recorded_at: DateTime<Utc>,
}

/// One retry about to be sent, counted by the hard limits.
#[derive(Debug, Clone)]
pub struct NewRetryAttempt {
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    /// The retry action; with `attempt`, what makes a reservation idempotent.
    pub action_id: Uuid,
    pub attempt: i32,
    pub workflow_run_id: Option<String>,
    pub vendor: Option<String>,
    pub attempted_at: DateTime<Utc>,
}

/// The scopes a retry is counted in.
#[derive(Debug, Clone)]
pub struct RetryScope {
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    pub workflow_run_id: Option<String>,
    pub vendor: Option<String>,
}

impl NewRetryAttempt {
    /// The scopes this attempt counts in.
    pub fn scope(&self) -> RetryScope {
        RetryScope {
            tenant_id: self.tenant_id,
            incident_id: self.incident_id,
            workflow_run_id: self.workflow_run_id.clone(),
            vendor: self.vendor.clone(),
        }
    }
}

/// Retries already made in each scope; a scope that is absent (no run id,
/// no vendor) counts 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RetryAttemptCounts {
    /// In this workflow run (of this tenant).
    pub run: i64,
    /// For this incident.
    pub incident: i64,
    /// To this vendor, from every tenant, in the hour before `now`.
    pub vendor_last_hour: i64,
}

/// What became of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptReservation {
    /// The counts before this attempt (when it was already reserved: the
    /// counts including it).
    pub counts: RetryAttemptCounts,
    /// Whether the attempt is recorded (now or before).
    pub reserved: bool,
    /// It had been reserved before (a redelivered command).
    pub duplicate: bool,
}

const INSERT_TRANSITION: &str = "INSERT INTO breaker_transitions
        (vendor, from_state, to_state, at, actor, reason, failure_rate, kv_revision)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (vendor, kv_revision, at) DO NOTHING";

const LIST_TRANSITIONS: &str = "SELECT id, vendor, from_state, to_state, at, actor, reason,
        failure_rate, kv_revision, recorded_at
    FROM breaker_transitions
    WHERE ($1::text IS NULL OR vendor = $1)
    ORDER BY at DESC, id DESC
    LIMIT $2";

// A NULL run id or vendor matches no row, so an absent scope counts 0.
const COUNT_ATTEMPTS: &str = "SELECT
        (SELECT count(*) FROM retry_attempts
            WHERE tenant_id = $1 AND workflow_run_id = $2) AS run,
        (SELECT count(*) FROM retry_attempts
            WHERE tenant_id = $1 AND incident_id = $3) AS incident,
        (SELECT count(*) FROM retry_attempts
            WHERE vendor = $4 AND attempted_at > $5 AND attempted_at <= $6) AS vendor_last_hour";

const EXISTING_ATTEMPT: &str = "SELECT 1 FROM retry_attempts
    WHERE tenant_id = $1 AND action_id = $2 AND attempt = $3";

const INSERT_ATTEMPT: &str = "INSERT INTO retry_attempts
        (tenant_id, incident_id, action_id, attempt, workflow_run_id, vendor, attempted_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

// Two-key advisory locks: the first key names the scope, so locks of
// different scopes never collide; taken in this order by every caller, so
// two reservations never wait on each other in a cycle.
const LOCK_SCOPE: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
const LOCK_RUN: i32 = 0x5201;
const LOCK_INCIDENT: i32 = 0x5202;
const LOCK_VENDOR: i32 = 0x5203;

impl Store {
    /// Records a breaker transition. Recording the same KV write twice
    /// (a retried insert) keeps one row.
    ///
    /// # Errors
    /// On database failure. Returns whether a row was added.
    pub async fn record_breaker_transition(
        &self,
        t: &NewBreakerTransition,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(INSERT_TRANSITION)
            .bind(&t.vendor)
            .bind(StateColumn(t.from_state))
            .bind(StateColumn(t.to_state))
            .bind(t.at)
            .bind(&t.actor)
            .bind(&t.reason)
            .bind(t.failure_rate)
            .bind(t.kv_revision)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// The latest breaker transitions, newest first, of one vendor or of all.
    ///
    /// # Errors
    /// On database failure.
    pub async fn breaker_transitions(
        &self,
        vendor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BreakerTransitionRow>, StoreError> {
        Ok(sqlx::query_as(LIST_TRANSITIONS)
            .bind(vendor)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Retries already made in each of `scope`'s scopes, the vendor's over
    /// the hour up to `now`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn retry_counts(
        &self,
        scope: &RetryScope,
        now: DateTime<Utc>,
    ) -> Result<RetryAttemptCounts, StoreError> {
        count_attempts(&self.pool, scope, now).await
    }

    /// Records `attempt` if `allow` says yes to the counts before it, as one
    /// atomic step: concurrent reservations in a shared scope are
    /// serialised, so a limit is never overshot by a race. Reserving an
    /// attempt already recorded (same tenant, action and attempt) succeeds
    /// without counting it again.
    ///
    /// # Errors
    /// On database failure.
    pub async fn reserve_retry_attempt(
        &self,
        attempt: &NewRetryAttempt,
        allow: impl FnOnce(&RetryAttemptCounts) -> bool + Send,
    ) -> Result<AttemptReservation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let t = attempt.tenant_id.to_string();
        let locks = [
            (
                LOCK_RUN,
                attempt.workflow_run_id.as_ref().map(|r| format!("{t}/{r}")),
            ),
            (LOCK_INCIDENT, Some(attempt.incident_id.to_string())),
            (LOCK_VENDOR, attempt.vendor.clone()),
        ];
        for (class, key) in locks {
            if let Some(key) = key {
                sqlx::query(LOCK_SCOPE)
                    .bind(class)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let existing = sqlx::query(EXISTING_ATTEMPT)
            .bind(attempt.tenant_id)
            .bind(attempt.action_id)
            .bind(attempt.attempt)
            .fetch_optional(&mut *tx)
            .await?;
        let counts = count_attempts(&mut *tx, &attempt.scope(), attempt.attempted_at).await?;
        if existing.is_some() {
            return Ok(AttemptReservation {
                counts,
                reserved: true,
                duplicate: true,
            });
        }
        if !allow(&counts) {
            return Ok(AttemptReservation {
                counts,
                reserved: false,
                duplicate: false,
            });
        }
        sqlx::query(INSERT_ATTEMPT)
            .bind(attempt.tenant_id)
            .bind(attempt.incident_id)
            .bind(attempt.action_id)
            .bind(attempt.attempt)
            .bind(attempt.workflow_run_id.as_deref())
            .bind(attempt.vendor.as_deref())
            .bind(attempt.attempted_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(AttemptReservation {
            counts,
            reserved: true,
            duplicate: false,
        })
    }
}

async fn count_attempts<'e, E>(
    executor: E,
    scope: &RetryScope,
    now: DateTime<Utc>,
) -> Result<RetryAttemptCounts, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    Ok(sqlx::query_as(COUNT_ATTEMPTS)
        .bind(scope.tenant_id)
        .bind(scope.workflow_run_id.as_deref())
        .bind(scope.incident_id)
        .bind(scope.vendor.as_deref())
        .bind(now - chrono::Duration::hours(1))
        .bind(now)
        .fetch_one(executor)
        .await?)
}
