//! Each tenant's remediation mode and pause, recorded with who and why.

use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError};

/// A tenant's remediation mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TenantMode {
    /// `auto`, `approve`, `shadow` or `off`.
    pub mode: String,
    pub paused: bool,
}

impl Default for TenantMode {
    fn default() -> Self {
        Self {
            mode: "auto".to_owned(),
            paused: false,
        }
    }
}

impl Store {
    /// The tenant's remediation mode (`auto`, not paused, unless set);
    /// paused also while every tenant is.
    ///
    /// # Errors
    /// On database failure.
    pub async fn tenant_mode(&self, tenant: Uuid) -> Result<TenantMode, StoreError> {
        let mode: Option<TenantMode> = sqlx::query_as(
            "SELECT coalesce(m.mode, 'auto') AS mode,
                    coalesce(m.paused, false) OR coalesce(p.paused, false) AS paused
             FROM (SELECT $1::uuid AS tenant_id) t
             LEFT JOIN tenant_modes m ON m.tenant_id = t.tenant_id
             LEFT JOIN remediation_pause p ON p.singleton",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        Ok(mode.unwrap_or_default())
    }

    /// Sets the tenant's mode and pause, recording who and why.
    ///
    /// # Errors
    /// On database failure, or a mode the table refuses.
    pub async fn set_tenant_mode(
        &self,
        tenant: Uuid,
        mode: &TenantMode,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_modes (tenant_id, mode, paused, changed_by, reason)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id) DO UPDATE SET mode = EXCLUDED.mode, paused = EXCLUDED.paused,
                 changed_by = EXCLUDED.changed_by, reason = EXCLUDED.reason, changed_at = now()",
        )
        .bind(tenant)
        .bind(&mode.mode)
        .bind(mode.paused)
        .bind(by)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        crate::operate::wake_schedulers(&self.pool).await
    }
}
