//! The vendor across this tenant's workflows and across tenants, in a
//! window: aggregates only, so nothing of another tenant but counts.

use awfdrs_analysis::VendorFacts;

use super::{FAILURE, IncidentRow, SUCCESS, secs};
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
        let sql = format!(
            "SELECT count(*) FILTER (WHERE tenant_id = $1) AS calls,
                    count(*) FILTER (WHERE tenant_id = $1 AND {FAILURE}) AS failures,
                    count(*) FILTER (WHERE tenant_id = $1 AND {SUCCESS}
                        AND (workflow_id <> $2 OR step IS DISTINCT FROM $3)) AS successes_elsewhere,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND {FAILURE})
                        AS other_tenants_failing,
                    count(*) FILTER (WHERE tenant_id <> $1 AND {FAILURE}) AS other_failures,
                    count(*) FILTER (WHERE tenant_id <> $1 AND {SUCCESS}) AS other_successes,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND error_code = $4)
                        AS other_same_code
             FROM events
             WHERE vendor = $5 AND occurred_at > $6 AND occurred_at <= $7"
        );
        let from = i.last_seen - secs(window);
        let row: VendorRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i.tenant_id)
            .bind(&i.workflow_id)
            .bind(&i.step)
            .bind(&i.error_code)
            .bind(vendor)
            .bind(from)
            .bind(i.last_seen)
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT DISTINCT workflow_id FROM events
             WHERE vendor = $1 AND tenant_id = $2 AND {FAILURE}
               AND occurred_at > $3 AND occurred_at <= $4
             ORDER BY 1 LIMIT 20"
        );
        let workflows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
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
