//! What the detector tells the next stage: `<ns>.incidents.<tenant>.opened`
//! or `.reopened`, an [`IncidentOpenedV1`] written through the outbox with
//! message id `incident-opened:<id>:opened` or
//! `incident-opened:<id>:reopened:<n>` (the n-th re-opening); and
//! `.retry_failed` when a later failure of the same run failed the
//! incident's retry (`incident-opened:<id>:retry-failed:<attempt>`).

use std::collections::HashMap;

use awfdrs_bus::Namespace;
use awfdrs_domain::{FailedRetry, IncidentOpenedV1};
use awfdrs_store::{NewOutbox, OpenedIncident};
use uuid::Uuid;

/// The outbox message announcing `o`, whose tenant's slug is in `slugs`.
pub(crate) fn opened(
    ns: &Namespace,
    slugs: &HashMap<Uuid, String>,
    o: &OpenedIncident,
) -> NewOutbox {
    let message = IncidentOpenedV1 {
        incident_id: o.id,
        tenant_id: o.tenant_id,
        tenant: slugs.get(&o.tenant_id).cloned().unwrap_or_default(),
        signature: o.signature.clone(),
        workflow_id: o.workflow_id.clone(),
        error_code: o.error_code.clone(),
        vendor: o.vendor.clone(),
        step: o.step.clone(),
        reopened: o.reopened,
        correlation_id: o.correlation_id.clone(),
        failed_retry: o.failed_retry.map(|(action_id, attempt)| FailedRetry {
            action_id,
            attempt: u32::try_from(attempt).unwrap_or(0),
        }),
    };
    // Each re-opening is its own message: the count tells them apart.
    let (subject, occurrence) = if let Some((_, attempt)) = o.failed_retry {
        (
            ns.incident_retry_failed(&message.tenant),
            format!("{}:retry-failed:{attempt}", o.id),
        )
    } else if o.reopened {
        (
            ns.incident_reopened(&message.tenant),
            format!("{}:reopened:{}", o.id, o.reopen_count),
        )
    } else {
        (
            ns.incident_opened(&message.tenant),
            format!("{}:opened", o.id),
        )
    };
    NewOutbox {
        tenant_id: o.tenant_id,
        subject,
        msg_id: Namespace::incident_opened_msg_id(&occurrence),
        payload: serde_json::to_value(&message).unwrap_or_default(),
        correlation_id: Some(o.correlation_id.clone()),
    }
}
