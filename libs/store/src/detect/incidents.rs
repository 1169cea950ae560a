//! Incidents in the batch: failures grouped by signature open, re-open or
//! update their incident; successes advance the success streak and
//! auto-resolve; every status change gets its transition.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use awfdrs_domain::IncidentStatus;
use awfdrs_domain::grouping::{self, Failure, OpenAfter, SignatureGroup};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{DetectBatch, DetectOutcome, DetectSettings, NewEvent, OpenedIncident};
use crate::StoreError;
use crate::states::{RESOLVED, StateColumn};

/// An incident row a statement touched: its id, (tenant, signature) and
/// how often it has re-opened.
#[derive(sqlx::FromRow)]
struct IncidentKeyRow {
    id: Uuid,
    tenant_id: Uuid,
    signature: String,
    reopen_count: i32,
}
/// An incident whose success streak the batch advanced, with its status
/// before and after.
#[derive(sqlx::FromRow)]
struct StreakRow {
    id: Uuid,
    tenant_id: Uuid,
    status: StateColumn<IncidentStatus>,
    before: StateColumn<IncidentStatus>,
}
/// Re-opens, per (tenant, signature), the incident resolved latest inside
/// the re-open window, unless the signature has an open one. `$4` = `NEW`.
static REOPEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH candidates AS (
    SELECT DISTINCT ON (i.tenant_id, i.signature) i.id
    FROM incidents i
    JOIN UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, signature)
      ON i.tenant_id = u.tenant_id AND i.signature = u.signature
    WHERE i.status = '{RESOLVED}'
      AND i.resolved_at > now() - make_interval(secs => $3)
    ORDER BY i.tenant_id, i.signature, i.resolved_at DESC
)
UPDATE incidents i
SET status = $4, resolved_at = NULL, resolved_by = NULL, reopened_at = now(),
    reopen_count = i.reopen_count + 1, success_streak = 0, updated_at = now()
FROM candidates c
WHERE i.id = c.id
  AND NOT EXISTS (SELECT 1 FROM incidents o
                  WHERE o.tenant_id = i.tenant_id AND o.signature = i.signature
                    AND o.status <> '{RESOLVED}')
RETURNING i.id, i.tenant_id, i.signature, i.reopen_count"
    )
});

/// Opens an incident per group, or adds the group to the signature's open
/// one (the conflict target repeats the partial unique index's predicate).
/// `$11` = `NEW`.
static UPSERT_INCIDENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
INSERT INTO incidents (id, tenant_id, signature, workflow_id, error_code, vendor, step, status,
    event_count, first_seen, last_seen, error_code_raw, open_after_rule)
SELECT id, tenant_id, signature, workflow_id, error_code, vendor, step, $11::text,
    event_count, first_seen, last_seen, error_code_raw, open_after_rule
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::bigint[], $9::timestamptz[], $10::timestamptz[], $12::text[], $13::text[])
    AS u(id, tenant_id, signature, workflow_id, error_code, vendor, step, event_count,
    first_seen, last_seen, error_code_raw, open_after_rule)
ON CONFLICT (tenant_id, signature) WHERE status <> '{RESOLVED}' DO UPDATE
SET event_count = incidents.event_count + EXCLUDED.event_count,
    first_seen = LEAST(incidents.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(incidents.last_seen, EXCLUDED.last_seen),
    vendor = COALESCE(EXCLUDED.vendor, incidents.vendor),
    step = COALESCE(EXCLUDED.step, incidents.step),
    success_streak = 0,
    updated_at = now()
RETURNING id, tenant_id, signature, reopen_count"
    )
});

/// Advances the success streak of the open incidents that successes follow,
/// resolving those that reach `$5`; `$6` = `RESOLVED`.
static COUNT_SUCCESSES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH s AS (
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
        AS u(tenant_id, workflow_id, step, occurred_at)
), hits AS (
    SELECT i.id, count(*)::int AS n
    FROM incidents i
    JOIN s ON i.tenant_id = s.tenant_id AND i.workflow_id = s.workflow_id
          AND (s.step IS NULL OR i.step IS NOT DISTINCT FROM s.step)
          AND s.occurred_at > i.last_seen
    WHERE i.status <> '{RESOLVED}'
    GROUP BY i.id
    ORDER BY i.id
)
UPDATE incidents i
SET success_streak = i.success_streak + hits.n,
    status = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN $6::text ELSE i.status END,
    resolved_at = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN now() ELSE i.resolved_at END,
    resolved_by = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN 'auto-resolve' ELSE i.resolved_by END,
    updated_at = now()
FROM hits
WHERE i.id = hits.id
RETURNING i.id, i.tenant_id, i.status, (SELECT status FROM incidents p WHERE p.id = i.id) AS before"
    )
});
const TRANSITIONS: &str = "
INSERT INTO incident_transitions (tenant_id, incident_id, from_status, to_status, actor, reason)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])";

/// Re-opens or opens the incident of each group (or adds the group to the
/// open one), filing what was opened under `out.opened`.
pub(super) async fn open_or_update(
    tx: &mut PgConnection,
    groups: &[SignatureGroup],
    settings: DetectSettings,
    out: &mut DetectOutcome,
) -> Result<(), StoreError> {
    if !groups.is_empty() {
        let (tenants, sigs): (Vec<Uuid>, Vec<String>) = groups
            .iter()
            .map(|g| (g.tenant_id, g.signature.clone()))
            .unzip();
        let reopened: Vec<IncidentKeyRow> = sqlx::query_as(REOPEN.as_str())
            .bind(&tenants)
            .bind(&sigs)
            .bind(settings.reopen_window_secs as f64)
            .bind(StateColumn(IncidentStatus::New))
            .fetch_all(&mut *tx)
            .await?;
        let reopened: BTreeMap<(Uuid, String), Uuid> = reopened
            .into_iter()
            .map(|r| ((r.tenant_id, r.signature), r.id))
            .collect();

        let fresh_ids: Vec<Uuid> = groups.iter().map(|_| Uuid::now_v7()).collect();
        let rows: Vec<IncidentKeyRow> = sqlx::query_as(UPSERT_INCIDENTS.as_str())
            .bind(&fresh_ids)
            .bind(&tenants)
            .bind(&sigs)
            .bind(
                groups
                    .iter()
                    .map(|g| g.workflow_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                groups
                    .iter()
                    .map(|g| g.error_code.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(groups.iter().map(|g| g.vendor.clone()).collect::<Vec<_>>())
            .bind(groups.iter().map(|g| g.step.clone()).collect::<Vec<_>>())
            .bind(groups.iter().map(|g| g.count).collect::<Vec<_>>())
            .bind(groups.iter().map(|g| g.first_seen).collect::<Vec<_>>())
            .bind(groups.iter().map(|g| g.last_seen).collect::<Vec<_>>())
            .bind(StateColumn(IncidentStatus::New))
            .bind(
                groups
                    .iter()
                    .map(|g| g.error_code_raw.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                groups
                    .iter()
                    .map(|g| {
                        g.open_after
                            .map(|_| format!("codes.{}.open_after", g.error_code))
                    })
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await?;
        let fresh: HashSet<Uuid> = fresh_ids.into_iter().collect();
        let by_key: BTreeMap<(Uuid, String), &SignatureGroup> = groups
            .iter()
            .map(|g| ((g.tenant_id, g.signature.clone()), g))
            .collect();
        for IncidentKeyRow {
            id,
            tenant_id,
            signature,
            reopen_count,
        } in rows
        {
            let key = (tenant_id, signature);
            let was_reopened = reopened.get(&key) == Some(&id);
            if !fresh.contains(&id) && !was_reopened {
                out.updated_incidents += 1;
                continue;
            }
            let Some(g) = by_key.get(&key) else { continue };
            out.opened.push(OpenedIncident {
                id,
                tenant_id,
                signature: key.1,
                workflow_id: g.workflow_id.clone(),
                error_code: g.error_code.clone(),
                vendor: g.vendor.clone(),
                step: g.step.clone(),
                reopened: was_reopened,
                reopen_count,
                correlation_id: g.correlation_id.clone(),
                failed_retry: None,
            });
        }
    }
    Ok(())
}

/// Advances the success streak of the open incidents the batch's new
/// successes follow; returns those it resolved (id, tenant, prior status).
pub(super) async fn count_successes(
    tx: &mut PgConnection,
    batch: &DetectBatch,
    inserted: &[usize],
    settings: DetectSettings,
) -> Result<Vec<(Uuid, Uuid, IncidentStatus)>, StoreError> {
    let successes: Vec<&NewEvent> = inserted
        .iter()
        .map(|&i| &batch.events[i])
        .filter(|e| e.is_success)
        .collect();
    let mut resolved_rows: Vec<(Uuid, Uuid, IncidentStatus)> = Vec::new();
    if !successes.is_empty() {
        let rows: Vec<StreakRow> = sqlx::query_as(COUNT_SUCCESSES.as_str())
            .bind(successes.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
            .bind(
                successes
                    .iter()
                    .map(|e| e.workflow_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(successes.iter().map(|e| e.step.clone()).collect::<Vec<_>>())
            .bind(successes.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .bind(i32::try_from(settings.auto_resolve_successes).unwrap_or(i32::MAX))
            .bind(StateColumn(IncidentStatus::Resolved))
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            let (status, before) = (r.status.0, r.before.0);
            if status == IncidentStatus::Resolved && before != IncidentStatus::Resolved {
                resolved_rows.push((r.id, r.tenant_id, before));
            }
        }
    }
    Ok(resolved_rows)
}

/// Writes the transitions of the incidents opened and resolved.
pub(super) async fn write_transitions(
    tx: &mut sqlx::PgConnection,
    opened: &[OpenedIncident],
    resolved: &[(Uuid, Uuid, IncidentStatus)],
    settings: DetectSettings,
) -> Result<(), StoreError> {
    let mut tenants = Vec::new();
    let mut ids = Vec::new();
    let mut from: Vec<Option<StateColumn<IncidentStatus>>> = Vec::new();
    let mut to = Vec::new();
    let mut actor = Vec::new();
    let mut reason = Vec::new();
    for o in opened {
        tenants.push(o.tenant_id);
        ids.push(o.id);
        from.push(o.reopened.then_some(StateColumn(IncidentStatus::Resolved)));
        to.push(StateColumn(IncidentStatus::New));
        actor.push("detector");
        reason.push(if o.reopened {
            format!(
                "failure within the re-open window ({}s) of the resolved incident",
                settings.reopen_window_secs
            )
        } else {
            "first failure of this signature".to_owned()
        });
    }
    for (id, tenant, before) in resolved {
        tenants.push(*tenant);
        ids.push(*id);
        from.push(Some(StateColumn(*before)));
        to.push(StateColumn(IncidentStatus::Resolved));
        actor.push("auto-resolve");
        reason.push(format!(
            "{} successes of the same step after the last failure",
            settings.auto_resolve_successes
        ));
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(TRANSITIONS)
        .bind(tenants)
        .bind(ids)
        .bind(from)
        .bind(to)
        .bind(actor)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
/// Groups the batch's newly persisted failures by signature (see
/// [`group_failures`](awfdrs_domain::grouping::group_failures)).
pub(super) fn group_failures(batch: &DetectBatch, inserted: &[usize]) -> Vec<SignatureGroup> {
    grouping::group_failures(inserted.iter().filter_map(|&i| {
        let e = &batch.events[i];
        let signature = e.signature.as_deref().filter(|_| e.is_failure)?;
        Some(Failure {
            tenant_id: e.tenant_id,
            signature,
            workflow_id: &e.workflow_id,
            error_code: e.error_code.as_deref(),
            error_code_raw: e.error_code_raw.as_deref(),
            vendor: e.vendor.as_deref(),
            step: e.step.as_deref(),
            occurred_at: e.occurred_at,
            correlation_id: &e.correlation_id,
            open_after: e.open_after.map(|(failures, within_secs)| OpenAfter {
                failures,
                within_secs,
            }),
        })
    }))
}
