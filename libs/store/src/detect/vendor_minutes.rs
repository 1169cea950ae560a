//! Counting the batch's stored events of each vendor by the minute
//! (`vendor_minutes`), which the analyzer's outage evidence reads instead
//! of the events themselves.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::NewEvent;
use crate::StoreError;

/// One row's key, in the order rows are locked: every transaction locks
/// them sorted, so concurrent detectors queue instead of deadlocking.
type Key<'a> = (
    &'a str,
    DateTime<Utc>,
    Uuid,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    calls: i64,
    failures: i64,
    successes: i64,
}

/// The minute `at` falls in (for any time chrono holds, unlike
/// `duration_trunc`, which counts in nanoseconds).
fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().div_euclid(60) * 60, 0).unwrap_or(at)
}

/// The batch's events that name a vendor, counted by row.
fn count<'a>(evs: &[&'a NewEvent]) -> BTreeMap<Key<'a>, Counts> {
    let mut rows: BTreeMap<Key<'a>, Counts> = BTreeMap::new();
    for e in evs {
        let Some(vendor) = e.vendor.as_deref() else {
            continue;
        };
        let key = (
            vendor,
            minute(e.occurred_at),
            e.tenant_id,
            e.workflow_id.as_str(),
            e.step.as_deref(),
            e.error_code.as_deref(),
        );
        let c = rows.entry(key).or_default();
        c.calls += 1;
        c.failures += i64::from(e.is_failure);
        c.successes += i64::from(e.is_success);
    }
    rows
}

/// Adds `evs` (the events stored now) to their vendors' minutes.
pub(super) async fn add(tx: &mut PgConnection, evs: &[&NewEvent]) -> Result<(), StoreError> {
    let rows = count(evs);
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let (mut vendor, mut at, mut tenant, mut workflow) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut step, mut code) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut calls, mut failures, mut successes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((v, m, t, w, s, e), c) in rows {
        vendor.push(v);
        at.push(m);
        tenant.push(t);
        workflow.push(w);
        step.push(s);
        code.push(e);
        calls.push(c.calls);
        failures.push(c.failures);
        successes.push(c.successes);
    }
    // WITH ORDINALITY keeps the sorted order, in which the rows are locked.
    sqlx::query(
        "INSERT INTO vendor_minutes AS m (vendor, minute, tenant_id, workflow_id, step, error_code,
                                          calls, failures, successes)
         SELECT vendor, minute, tenant_id, workflow_id, step, error_code, calls, failures, successes
         FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::bigint[], $9::bigint[])
              WITH ORDINALITY
              AS u(vendor, minute, tenant_id, workflow_id, step, error_code,
                   calls, failures, successes, n)
         ORDER BY n
         ON CONFLICT (vendor, minute, tenant_id, workflow_id, step, error_code) DO UPDATE
         SET calls = m.calls + excluded.calls,
             failures = m.failures + excluded.failures,
             successes = m.successes + excluded.successes",
    )
    .bind(vendor)
    .bind(at)
    .bind(tenant)
    .bind(workflow)
    .bind(step)
    .bind(code)
    .bind(calls)
    .bind(failures)
    .bind(successes)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(vendor: Option<&str>, at: &str, failure: bool) -> NewEvent {
        NewEvent {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            idempotency_key: String::new(),
            workflow_id: "checkout".to_owned(),
            event_type: if failure {
                "step_failed"
            } else {
                "step_succeeded"
            },
            is_failure: failure,
            is_success: !failure,
            occurred_at: at.parse().unwrap(),
            workflow_run_id: None,
            step: Some("charge".to_owned()),
            vendor: vendor.map(str::to_owned),
            error_code: failure.then(|| "vendor_5xx".to_owned()),
            error_code_raw: None,
            error_message: None,
            http_status: None,
            retryable: None,
            attempt: None,
            correlation_id: String::new(),
            signature: None,
            body_hash: Vec::new(),
            source: "nats",
            reservation: None,
            metadata: None,
            open_after: None,
        }
    }

    #[test]
    fn a_minute_is_found_for_any_time() {
        for (at, m) in [
            ("1969-12-31T23:59:30.5Z", "1969-12-31T23:59:00+00:00"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:00+00:00"),
            ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00+00:00"),
        ] {
            assert_eq!(minute(at.parse().unwrap()).to_rfc3339(), m, "{at}");
        }
    }

    #[test]
    fn events_are_counted_by_vendor_minute_and_kind() {
        let evs = [
            event(Some("stripe"), "2026-12-01T10:00:59.999Z", true),
            event(Some("stripe"), "2026-12-01T10:00:00Z", true),
            event(Some("stripe"), "2026-12-01T10:00:30Z", false),
            event(Some("stripe"), "2026-12-01T10:01:00Z", true),
            event(Some("adyen"), "2026-12-01T10:00:10Z", true),
            event(None, "2026-12-01T10:00:10Z", true),
        ];
        let refs: Vec<&NewEvent> = evs.iter().collect();
        let rows: Vec<(&str, String, Option<&str>, Counts)> = count(&refs)
            .into_iter()
            .map(|((v, m, _, _, _, code), c)| (v, m.to_rfc3339(), code, c))
            .collect();
        let c = |calls, failures, successes| Counts {
            calls,
            failures,
            successes,
        };
        assert_eq!(
            rows,
            [
                (
                    "adyen",
                    "2026-12-01T10:00:00+00:00".to_owned(),
                    Some("vendor_5xx"),
                    c(1, 1, 0)
                ),
                (
                    "stripe",
                    "2026-12-01T10:00:00+00:00".to_owned(),
                    None,
                    c(1, 0, 1)
                ),
                (
                    "stripe",
                    "2026-12-01T10:00:00+00:00".to_owned(),
                    Some("vendor_5xx"),
                    c(2, 2, 0)
                ),
                (
                    "stripe",
                    "2026-12-01T10:01:00+00:00".to_owned(),
                    Some("vendor_5xx"),
                    c(1, 1, 0)
                ),
            ],
            "sorted by key, an event with no vendor left out"
        );
    }
}
