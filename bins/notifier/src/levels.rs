//! The notifier's `notifier.levels` task: an escalated incident that
//! nobody acknowledged (`POST /api/v1/incidents/{id}/acknowledge`) within
//! its latest level's wait (the least `escalate_after_ms` of that level's
//! channels, else `notifications.escalate_after_ms`), and is not
//! resolved, is told to the tenant's next level of channels that takes
//! its severity; so is one whose latest level failed on every channel (a
//! fallback, at once, counted in `awfdrs_notification_fallbacks_total`).
//! One transaction per incident, `ON CONFLICT DO NOTHING`:
//! competing notifiers make none twice.

use std::sync::Arc;
use std::time::Duration;

use awfdrs_domain::decision::DecisionV1;
use awfdrs_runtime::Context;
use awfdrs_store::{LevelDue, StoreError};
use awfdrs_telemetry::TaskHealth;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::recipients;

/// How often unacknowledged incidents are looked for.
const PERIOD: Duration = Duration::from_millis(500);
/// Incidents taken per round.
const BATCH: i64 = 100;

/// Runs the levels loop until `stop`.
pub(crate) async fn run(
    ctx: Context,
    wake: Arc<Notify>,
    health: TaskHealth,
    stop: CancellationToken,
) {
    let after = Duration::from_millis(ctx.config.notifications.escalate_after_ms);
    awfdrs_runtime::rounds::every(
        PERIOD,
        "escalate to the next level",
        health,
        stop,
        || async {
            if round(&ctx, after).await? > 0 {
                wake.notify_one();
            }
            Ok::<_, StoreError>(())
        },
    )
    .await;
}

async fn round(ctx: &Context, after: Duration) -> Result<usize, StoreError> {
    let mut queued = 0;
    for due in ctx.store.levels_due(after, BATCH).await? {
        queued += next_level(ctx, &due).await?;
    }
    Ok(queued)
}

/// Queues the next level of `due`; returns how many notifications.
async fn next_level(ctx: &Context, due: &LevelDue) -> Result<usize, StoreError> {
    let store = &ctx.store;
    let incident = store
        .incident(Some(due.tenant_id), due.incident_id)
        .await?
        .incident;
    let Some(decision_id) = store
        .latest_decision(due.tenant_id, due.incident_id)
        .await?
    else {
        return Ok(0);
    };
    let Some(decision) = store.decision(decision_id).await? else {
        return Ok(0);
    };
    let Ok(decision) = serde_json::from_value::<DecisionV1>(decision) else {
        return Ok(0);
    };
    let channels = store.channels(due.tenant_id).await?;
    let chosen =
        recipients::first_level(&channels, decision.classification.severity, Some(due.level));
    if chosen.is_empty() {
        return Ok(0);
    }
    let reason = if due.failed {
        format!(
            "every channel of level {} failed to take it (fallback)",
            due.level
        )
    } else {
        format!(
            "not acknowledged within {} s of level {}",
            Duration::from_millis(u64::try_from(due.wait_ms).unwrap_or_default()).as_secs_f64(),
            due.level
        )
    };
    let group = recipients::group_key(&incident, &decision, &ctx.rules.current())
        .filter(|_| !crate::queue::window(ctx).is_zero());
    let planned = recipients::escalated(&chosen, &incident, &decision, &reason, group.as_deref());
    let new = crate::queue::commit(ctx, &planned).await?;
    if due.failed && new > 0 {
        ctx.metrics.notification_fallbacks.inc();
    }
    info!(
        incident = %due.incident_id, from = due.level, to = chosen[0].level, new,
        fallback = due.failed, "next level notified"
    );
    Ok(new)
}
