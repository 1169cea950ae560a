//! How released probe retries went: a half-open breaker's probe slot is held
//! by a retry's action id until the retry reports, and the retry reports by
//! its outcome here.

use awfdrs_domain::ActionStatus;
use uuid::Uuid;

use crate::states::StateColumn;
use crate::{Store, StoreError};

impl Store {
    /// Of the actions `ids`, those that finished, with their status
    /// (`SUCCEEDED`, `FAILED` or `CANCELLED`).
    ///
    /// # Errors
    /// On database failure.
    pub async fn finished_actions(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ActionStatus)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, StateColumn<ActionStatus>)> = sqlx::query_as(
            "SELECT id, status FROM actions
             WHERE id = ANY($1) AND status IN ($2, $3, $4)
             ORDER BY id",
        )
        .bind(ids)
        .bind(StateColumn(ActionStatus::Succeeded))
        .bind(StateColumn(ActionStatus::Failed))
        .bind(StateColumn(ActionStatus::Cancelled))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, s)| (id, s.0)).collect())
    }
}
