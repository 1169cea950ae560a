//! The vendor across this tenant's workflows and across tenants, in a
//! window: aggregates only, so nothing of another tenant but counts. They
//! are read from the vendor's counts by the minute, which the detector
//! keeps, so an analysis reads a few rows per minute of the window however
//! many events the vendor had in it.

use awfdrs_analysis::VendorFacts;

use super::{IncidentRow, secs};
use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct VendorRow {
    calls: i64,
    failures: i64,
    successes_elsewhere: i64,
    other_tenants_failing: i64,
    other_failures: i64,
    other_successes: i64,
    other_same_code: i64,
}

impl Store {
    pub(super) async fn vendor_facts(
        &self,
        i: &IncidentRow,
        vendor: &str,
        window: u64,
    ) -> Result<VendorFacts, StoreError> {
        // Counted by the minute (`vendor_minutes`): the window is the
        // minutes it touches, from the one `window` before the last failure
        // to the last failure's own.
        let from = i.last_seen - secs(window);
        let row: VendorRow = sqlx::query_as(
            "SELECT coalesce(sum(calls) FILTER (WHERE tenant_id = $1), 0)::bigint AS calls,
                    coalesce(sum(failures) FILTER (WHERE tenant_id = $1), 0)::bigint AS failures,
                    coalesce(sum(successes) FILTER (WHERE tenant_id = $1
                        AND (workflow_id <> $2 OR step IS DISTINCT FROM $3)), 0)::bigint
                        AS successes_elsewhere,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND failures > 0)
                        AS other_tenants_failing,
                    coalesce(sum(failures) FILTER (WHERE tenant_id <> $1), 0)::bigint
                        AS other_failures,
                    coalesce(sum(successes) FILTER (WHERE tenant_id <> $1), 0)::bigint
                        AS other_successes,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND error_code = $4)
                        AS other_same_code
             FROM vendor_minutes
             WHERE vendor = $5
               AND minute >= date_trunc('minute', $6::timestamptz, 'UTC')
               AND minute <= date_trunc('minute', $7::timestamptz, 'UTC')",
        )
        .bind(i.tenant_id)
        .bind(&i.workflow_id)
        .bind(&i.step)
        .bind(&i.error_code)
        .bind(vendor)
        .bind(from)
        .bind(i.last_seen)
        .fetch_one(&self.pool)
        .await?;
        let workflows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT workflow_id FROM vendor_minutes
             WHERE vendor = $1 AND tenant_id = $2 AND failures > 0
               AND minute >= date_trunc('minute', $3::timestamptz, 'UTC')
               AND minute <= date_trunc('minute', $4::timestamptz, 'UTC')
             ORDER BY 1 LIMIT 20",
        )
        .bind(vendor)
        .bind(i.tenant_id)
        .bind(from)
        .bind(i.last_seen)
        .fetch_all(&self.pool)
        .await?;
        Ok(VendorFacts {
            vendor: vendor.to_owned(),
            window_secs: window,
            breaker: None,
            tenant_workflows_failing: workflows,
            tenant_calls: row.calls,
            tenant_failures: row.failures,
            tenant_successes_elsewhere: row.successes_elsewhere,
            other_tenants_failing: row.other_tenants_failing,
            other_tenant_failures: row.other_failures,
            other_tenant_successes: row.other_successes,
            other_tenants_same_code: row.other_same_code,
        })
    }
}
