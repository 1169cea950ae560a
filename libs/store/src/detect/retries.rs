//! Retries that did not fix the run: a failure of a workflow run that
//! occurred after a retry of that run was fired counts against the retry.
//! The retry (`EXECUTING`) becomes `FAILED`, by `detector`, naming the
//! failure, in the batch's transaction; its incident is announced again so
//! that the analyzer decides once more (and the coordinator tries the next
//! attempt, or escalates when the policy says stop).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{DetectOutcome, NewEvent, OpenedIncident};
use crate::StoreError;
use crate::states::StateColumn;
use awfdrs_domain::ActionStatus;

/// The actor of the timeline entry.
const ACTOR: &str = "detector";

#[derive(sqlx::FromRow)]
struct FailedRow {
    action_id: Uuid,
    attempt: i32,
    incident_id: Uuid,
    tenant_id: Uuid,
    signature: String,
    workflow_id: String,
    error_code: String,
    vendor: Option<String>,
    step: Option<String>,
    correlation_id: String,
}

// The earliest failure of each run in the batch, against the fired retries
// of that run (locked in id order, as every writer of actions locks them).
const FAIL_RETRIES: &str = "
WITH f AS (
    SELECT DISTINCT ON (tenant_id, run) tenant_id, run, event_id, occurred_at, correlation_id
    FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[], $5::text[])
        AS u(tenant_id, run, event_id, occurred_at, correlation_id)
    ORDER BY tenant_id, run, occurred_at
), old AS (
    SELECT a.id, f.event_id, f.correlation_id
    FROM actions a JOIN f ON a.tenant_id = f.tenant_id AND a.workflow_run_id = f.run
    WHERE a.kind = 'retry' AND a.status = $6 AND NOT a.shadow AND f.occurred_at >= a.fired_at
    ORDER BY a.id
    FOR UPDATE OF a
), changed AS (
    UPDATE actions a SET status = $7, updated_at = now()
    FROM old WHERE a.id = old.id
    RETURNING a.tenant_id, a.id, a.incident_id, a.attempt, old.event_id, old.correlation_id
), timeline AS (
    INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
    SELECT tenant_id, id, $6, $7, $8, 'the run failed again after the retry (event ' || event_id || ')'
    FROM changed
)
SELECT c.id AS action_id, c.attempt, c.incident_id, c.tenant_id, i.signature, i.workflow_id,
       i.error_code, i.vendor, i.step, c.correlation_id
FROM changed c JOIN incidents i ON i.id = c.incident_id
ORDER BY c.id";

/// Fails the fired retries of the runs whose failures the batch persisted
/// now (`inserted` indexes `events`), and files their incidents under
/// `out.retries_failed`.
pub(super) async fn fail_retries(
    tx: &mut PgConnection,
    events: &[NewEvent],
    out: &mut DetectOutcome,
) -> Result<(), StoreError> {
    let failures: Vec<&NewEvent> = out
        .inserted
        .iter()
        .map(|&i| &events[i])
        .filter(|e| e.is_failure && e.workflow_run_id.is_some())
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let rows: Vec<FailedRow> = sqlx::query_as(FAIL_RETRIES)
        .bind(failures.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
        .bind(
            failures
                .iter()
                .map(|e| e.workflow_run_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(failures.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(
            failures
                .iter()
                .map(|e| e.occurred_at)
                .collect::<Vec<DateTime<Utc>>>(),
        )
        .bind(
            failures
                .iter()
                .map(|e| e.correlation_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(StateColumn(ActionStatus::Executing))
        .bind(StateColumn(ActionStatus::Failed))
        .bind(ACTOR)
        .fetch_all(tx)
        .await?;
    out.retries_failed
        .extend(rows.into_iter().map(|r| OpenedIncident {
            id: r.incident_id,
            tenant_id: r.tenant_id,
            signature: r.signature,
            workflow_id: r.workflow_id,
            error_code: r.error_code,
            vendor: r.vendor,
            step: r.step,
            reopened: false,
            reopen_count: 0,
            correlation_id: r.correlation_id,
            failed_retry: Some((r.action_id, r.attempt)),
        }));
    Ok(())
}
