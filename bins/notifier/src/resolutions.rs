//! The notifier's `notifier.resolutions` task: when an escalated incident
//! resolves (a later success, a retry that worked, an operator), every
//! channel that was told of its escalation is told it is resolved, once
//! (`incident.resolved`; PagerDuty: `resolve` with the same `dedup_key`).
//!
//! Each round (every second) asks the store for delivered escalation
//! notifications of resolved incidents that have no resolved notification
//! yet, and queues one per channel in one transaction per incident (`ON
//! CONFLICT DO NOTHING`, so competing notifiers make none twice); the
//! delivery task sends them as it sends the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use awfdrs_domain::decision::DecisionV1;
use awfdrs_runtime::Context;
use awfdrs_store::{NewNotification, ResolvedToNotify, StoreError};
use awfdrs_telemetry::TaskHealth;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::bodies::{self, Facts};

/// The type of the notifications a resolution makes.
pub const RESOLVED: &str = "incident.resolved";

/// How often resolved incidents are looked for.
const PERIOD: Duration = Duration::from_secs(1);
/// Channels taken per round.
const BATCH: i64 = 200;

/// Runs the resolutions loop until `stop`.
pub(crate) async fn run(
    ctx: Context,
    wake: Arc<Notify>,
    health: TaskHealth,
    stop: CancellationToken,
) {
    awfdrs_runtime::rounds::every(
        PERIOD,
        "queue resolved notifications",
        health,
        stop,
        || async {
            if round(&ctx).await? > 0 {
                wake.notify_one();
            }
            Ok::<_, StoreError>(())
        },
    )
    .await;
}

/// One round; returns how many notifications it queued.
async fn round(ctx: &Context) -> Result<usize, StoreError> {
    let due = ctx.store.resolved_to_notify(BATCH).await?;
    let mut by_incident: BTreeMap<(Uuid, Uuid), Vec<ResolvedToNotify>> = BTreeMap::new();
    for r in due {
        by_incident
            .entry((r.tenant_id, r.incident_id))
            .or_default()
            .push(r);
    }
    let mut queued = 0;
    for ((tenant, incident), rows) in by_incident {
        queued += notify_incident(ctx, tenant, incident, &rows).await?;
    }
    Ok(queued)
}

/// Queues the resolved notifications of the escalation notifications
/// `rows`, all about the first incident `incident` (alone, or with the
/// others of its group).
async fn notify_incident(
    ctx: &Context,
    tenant: Uuid,
    incident: Uuid,
    rows: &[ResolvedToNotify],
) -> Result<usize, StoreError> {
    let store = &ctx.store;
    let detail = store.incident(Some(tenant), incident).await?;
    let Some(decision_id) = store.latest_decision(tenant, incident).await? else {
        return Ok(0);
    };
    let Some(decision) = store.decision(decision_id).await? else {
        return Ok(0);
    };
    let decision: DecisionV1 = match serde_json::from_value(decision) {
        Ok(d) => d,
        Err(e) => {
            warn!(%incident, error = %e, "the recorded decision does not read back; not notified");
            return Ok(0);
        }
    };
    let reason = format!(
        "resolved by {}",
        detail.incident.resolved_by.as_deref().unwrap_or("unknown")
    );
    let channels = store.channels(tenant).await?;
    let mut work = store.begin_work().await?;
    let mut planned: Vec<NewNotification> = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(channel) = channels.iter().find(|c| c.id == r.channel_id) else {
            continue;
        };
        let facts = Facts {
            kind: RESOLVED,
            incident: &detail.incident,
            decision: &decision,
            level: r.level,
            reason: &reason,
        };
        let lead = bodies::body(channel, &facts);
        let (body, also) = if r.incident_count > 1 {
            let members = work.group_members(r.notification_id).await?;
            let also = members
                .iter()
                .map(|m| m.incident_id)
                .filter(|id| *id != incident)
                .collect();
            (bodies::grouped(&channel.kind, &lead, &members), also)
        } else {
            (lead.to_string(), Vec::new())
        };
        planned.push(NewNotification {
            tenant_id: tenant,
            incident_id: incident,
            channel_id: channel.id,
            level: r.level,
            kind: RESOLVED,
            body,
            not_before: None,
            group_key: None,
            lead_body: None,
            also,
        });
    }
    let (new, _) = crate::queue::queue(&mut work, &planned, Duration::ZERO).await?;
    // Notifications are delivered from their rows: no outbox rows.
    let _none = work.commit().await?;
    if new > 0 {
        info!(%incident, new, "resolution notified");
    }
    Ok(new)
}
