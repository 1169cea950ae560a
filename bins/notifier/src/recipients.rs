//! Who is told of an escalation: the channels of the lowest level (above
//! the one already told, for the next level) whose `min_severity` the
//! incident's severity meets, each with the body its kind takes.

use awfdrs_domain::decision::{DecisionV1, Severity};
use awfdrs_store::{Channel, Incident, NewNotification};

use crate::bodies::{self, Facts};

/// The type of the notifications an escalation makes.
pub const ESCALATED: &str = "incident.escalated";

/// Whether `channel` is told of an incident of `severity`: its
/// `min_severity` is met (an unreadable one is taken as `low`).
fn meets(channel: &Channel, severity: Severity) -> bool {
    let min: Severity =
        serde_json::from_value(serde_json::Value::String(channel.min_severity.clone()))
            .unwrap_or(Severity::Low);
    severity >= min
}

/// The channels of the lowest level above `above` (any, for `None`) that
/// take an incident of `severity`, in order.
#[must_use]
pub fn first_level(channels: &[Channel], severity: Severity, above: Option<i32>) -> Vec<&Channel> {
    let taking: Vec<&Channel> = channels
        .iter()
        .filter(|c| meets(c, severity) && above.is_none_or(|l| c.level > l))
        .collect();
    let Some(level) = taking.iter().map(|c| c.level).min() else {
        return Vec::new();
    };
    taking.into_iter().filter(|c| c.level == level).collect()
}

/// One `incident.escalated` notification per channel of `chosen`, at the
/// channel's level.
#[must_use]
pub fn escalated(
    chosen: &[&Channel],
    incident: &Incident,
    decision: &DecisionV1,
    reason: &str,
) -> Vec<NewNotification> {
    chosen
        .iter()
        .map(|c| {
            let facts = Facts {
                kind: ESCALATED,
                incident,
                decision,
                level: c.level,
                reason,
            };
            NewNotification {
                tenant_id: incident.tenant_id,
                incident_id: incident.id,
                channel_id: c.id,
                level: c.level,
                kind: ESCALATED,
                body: bodies::body(c, &facts).to_string(),
            }
        })
        .collect()
}
