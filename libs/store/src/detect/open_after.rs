//! The `open_after` gate: a rule may open an incident only once enough
//! failures of its signature fall within a window.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use awfdrs_domain::grouping::{GateWindow, SignatureGroup};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::states::RESOLVED;

/// A gated signature's failures inside its `open_after` window.
#[derive(sqlx::FromRow)]
struct GateRow {
    tenant_id: Uuid,
    signature: String,
    recent: i64,
    first: Option<DateTime<Utc>>,
}
/// Gated signatures that could open a first incident: no open incident and
/// none resolved inside the re-open window (a failure there re-opens it at
/// once, the flapping guard), so every failure in the window is uncounted.
static HELD_BACK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT u.tenant_id, u.signature,
    (SELECT count(*) FROM events e
     WHERE e.tenant_id = u.tenant_id AND e.signature = u.signature
       AND e.occurred_at > u.since) AS recent,
    (SELECT min(e.occurred_at) FROM events e
     WHERE e.tenant_id = u.tenant_id AND e.signature = u.signature
       AND e.occurred_at > u.since) AS first
FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS u(tenant_id, signature, since)
WHERE NOT EXISTS (SELECT 1 FROM incidents i
                  WHERE i.tenant_id = u.tenant_id AND i.signature = u.signature
                    AND (i.status <> '{RESOLVED}'
                         OR i.resolved_at > now() - make_interval(secs => $4)))"
    )
});

/// Serialises the `open_after` decision per signature across concurrent
/// transactions, in (tenant, signature) order so they cannot deadlock: the
/// second waits for the first to commit and then sees its incident and
/// events, so neither holds back nor counts a failure twice.
const LOCK_GATED: &str = "
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT hashtextextended(u.tenant_id::text || u.signature, 0) AS k
    FROM UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, signature)
    ORDER BY u.tenant_id, u.signature
) locks";
/// Holds back the groups whose rule opens an incident only after N
/// failures in a window, while there is no open incident and fewer than N
/// failures (counting those just persisted) fall in the window; a group
/// that reaches N opens its incident with all of them counted.
///
/// Two detectors each holding part of the N-th failure may both hold back;
/// the next failure of the signature then opens the incident.
pub(super) async fn apply_open_after(
    tx: &mut sqlx::PgConnection,
    groups: &mut Vec<SignatureGroup>,
    reopen_window_secs: u64,
) -> Result<(), StoreError> {
    let gated: Vec<&SignatureGroup> = groups.iter().filter(|g| g.open_after.is_some()).collect();
    if gated.is_empty() {
        return Ok(());
    }
    let since: Vec<DateTime<Utc>> = gated.iter().filter_map(|g| g.window_start()).collect();
    let _: i64 = sqlx::query_scalar(LOCK_GATED)
        .bind(gated.iter().map(|g| g.tenant_id).collect::<Vec<_>>())
        .bind(
            gated
                .iter()
                .map(|g| g.signature.clone())
                .collect::<Vec<_>>(),
        )
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<GateRow> = sqlx::query_as(HELD_BACK.as_str())
        .bind(gated.iter().map(|g| g.tenant_id).collect::<Vec<_>>())
        .bind(
            gated
                .iter()
                .map(|g| g.signature.clone())
                .collect::<Vec<_>>(),
        )
        .bind(since)
        .bind(reopen_window_secs as f64)
        .fetch_all(&mut *tx)
        .await?;
    let windows: BTreeMap<(Uuid, String), GateWindow> = rows
        .into_iter()
        .map(|r| {
            let window = GateWindow {
                failures: r.recent,
                first: r.first,
            };
            ((r.tenant_id, r.signature), window)
        })
        .collect();
    groups.retain_mut(|g| {
        let window = windows.get(&(g.tenant_id, g.signature.clone())).copied();
        g.passes_gate(window)
    });
    Ok(())
}
