//! Who is told of an escalation: the channels of the lowest level (above
//! the one already told, for the next level) whose `min_severity` the
//! incident's severity meets, each with the body its kind takes.

use awfdrs_domain::decision::{CauseKind, DecisionV1, Severity};
use awfdrs_rules::Rules;
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

/// The root cause `incident` may share with others, so that they are told
/// in one notification: its vendor and error code, when the vendor is to
/// blame (the code's rule says so, or the analysis found the vendor
/// failing or throttling); `None`: it is told on its own.
#[must_use]
pub fn group_key(incident: &Incident, decision: &DecisionV1, rules: &Rules) -> Option<String> {
    let vendor = incident.vendor.as_deref()?;
    let at_fault = rules.error_code(&incident.error_code).vendor_fault
        || matches!(
            decision.root_cause.hypothesis.kind,
            CauseKind::VendorOutage | CauseKind::VendorThrottling
        );
    at_fault.then(|| format!("vendor:{vendor}:{}", incident.error_code))
}

/// One `incident.escalated` notification per channel of `chosen`, at the
/// channel's level; with a `group` key, each may join (or start) a group
/// of the incidents that share it.
#[must_use]
pub fn escalated(
    chosen: &[&Channel],
    incident: &Incident,
    decision: &DecisionV1,
    reason: &str,
    group: Option<&str>,
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
            let lead = bodies::body(c, &facts);
            let (body, lead_body) = match group {
                Some(_) => (
                    bodies::grouped(&c.kind, &lead, &[bodies::member(incident)]),
                    Some(lead.to_string()),
                ),
                None => (lead.to_string(), None),
            };
            NewNotification {
                tenant_id: incident.tenant_id,
                incident_id: incident.id,
                channel_id: c.id,
                level: c.level,
                kind: ESCALATED,
                body,
                not_before: None,
                group_key: group.map(str::to_owned),
                lead_body,
                also: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn channel(name: &str, level: i32, min: &str) -> Channel {
        Channel {
            id: Uuid::now_v7(),
            tenant_id: Uuid::nil(),
            name: name.to_owned(),
            kind: "webhook".to_owned(),
            url: "https://example.com/".to_owned(),
            min_severity: min.to_owned(),
            routing_key: None,
            level,
            escalate_after_ms: None,
            rate_per_minute: None,
            position: 0,
            created_at: chrono::Utc::now(),
        }
    }

    fn names(chosen: &[&Channel]) -> Vec<String> {
        chosen.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn the_lowest_level_that_takes_the_severity_is_chosen() {
        let channels = [
            channel("a", 1, "critical"),
            channel("b", 2, "low"),
            channel("c", 2, "high"),
            channel("d", 4, "low"),
        ];
        assert_eq!(
            names(&first_level(&channels, Severity::Critical, None)),
            ["a"]
        );
        // Level 1 does not take a medium incident: level 2 is the first.
        assert_eq!(
            names(&first_level(&channels, Severity::Medium, None)),
            ["b"]
        );
        assert_eq!(
            names(&first_level(&channels, Severity::High, Some(1))),
            ["b", "c"]
        );
        assert_eq!(
            names(&first_level(&channels, Severity::Low, Some(2))),
            ["d"]
        );
        assert!(first_level(&channels, Severity::Low, Some(4)).is_empty());
    }
}
