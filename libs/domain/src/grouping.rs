//! How the detector groups a batch's failures into incidents, decided
//! without the database: failures of one signature become one group, and a
//! rule's `open_after` gate holds a group back until enough failures of its
//! signature fall within the rule's window.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A rule's gate: open an incident only once `failures` failures of the
/// signature fall within `within_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenAfter {
    pub failures: i64,
    pub within_secs: f64,
}

/// A newly persisted failure, as grouping sees it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub tenant_id: Uuid,
    pub signature: &'a str,
    pub workflow_id: &'a str,
    /// The normalised error code.
    pub error_code: Option<&'a str>,
    /// The error code as the producer sent it.
    pub error_code_raw: Option<&'a str>,
    pub vendor: Option<&'a str>,
    pub step: Option<&'a str>,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: &'a str,
    pub open_after: Option<OpenAfter>,
}

/// Newly persisted failures of one signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureGroup {
    pub tenant_id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    /// The code as the producer sent it, in the group's first failure.
    pub error_code_raw: String,
    /// The vendor of the latest failure that names one.
    pub vendor: Option<String>,
    /// The step of the latest failure that names one.
    pub step: Option<String>,
    /// How many failures the group's incident counts.
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The correlation id of the group's first failure in the batch.
    pub correlation_id: String,
    /// The gate of the first failure's rule.
    pub open_after: Option<OpenAfter>,
}

/// What the database holds of a gated signature that has no incident to add
/// to (none open, none resolved inside the re-open window): its failures
/// inside the `open_after` window, those just persisted included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateWindow {
    pub failures: i64,
    /// The earliest of them.
    pub first: Option<DateTime<Utc>>,
}

/// Groups failures by (tenant, signature), sorted by (tenant, signature)
/// so concurrent detectors lock incidents in the same order.
pub fn group_failures<'a>(failures: impl IntoIterator<Item = Failure<'a>>) -> Vec<SignatureGroup> {
    let mut groups: BTreeMap<(Uuid, &str), SignatureGroup> = BTreeMap::new();
    for f in failures {
        groups
            .entry((f.tenant_id, f.signature))
            .or_insert_with(|| SignatureGroup::first(&f))
            .add(&f);
    }
    groups.into_values().collect()
}

impl SignatureGroup {
    /// An empty group of `f`'s signature, with what its first failure says.
    fn first(f: &Failure<'_>) -> Self {
        Self {
            tenant_id: f.tenant_id,
            signature: f.signature.to_owned(),
            workflow_id: f.workflow_id.to_owned(),
            error_code: f.error_code.unwrap_or_default().to_owned(),
            error_code_raw: f
                .error_code_raw
                .or(f.error_code)
                .unwrap_or_default()
                .to_owned(),
            vendor: None,
            step: None,
            count: 0,
            first_seen: f.occurred_at,
            last_seen: f.occurred_at,
            correlation_id: f.correlation_id.to_owned(),
            open_after: f.open_after,
        }
    }

    /// Counts `f`; the latest failure's vendor and step win, and an absent
    /// one never hides one that is known.
    fn add(&mut self, f: &Failure<'_>) {
        self.count += 1;
        self.first_seen = self.first_seen.min(f.occurred_at);
        if f.occurred_at >= self.last_seen {
            self.last_seen = f.occurred_at;
            self.vendor = f.vendor.map(str::to_owned).or(self.vendor.take());
            self.step = f.step.map(str::to_owned).or(self.step.take());
        }
        if self.vendor.is_none() {
            self.vendor = f.vendor.map(str::to_owned);
        }
        if self.step.is_none() {
            self.step = f.step.map(str::to_owned);
        }
    }

    /// Where the group's `open_after` window starts (it ends at its last
    /// failure); `None` for a group without a gate.
    pub fn window_start(&self) -> Option<DateTime<Utc>> {
        let gate = self.open_after?;
        let millis = (gate.within_secs * 1000.0) as i64;
        Some(self.last_seen - chrono::Duration::milliseconds(millis))
    }

    /// Whether the group goes on to open or update its incident. A group
    /// without a gate, or whose signature has an incident to add to
    /// (`window` None), always does. A gated one does once its window holds
    /// enough failures, and then counts all of them; otherwise it is held
    /// back.
    pub fn passes_gate(&mut self, window: Option<GateWindow>) -> bool {
        let (Some(gate), Some(window)) = (self.open_after, window) else {
            return true;
        };
        if window.failures < gate.failures {
            return false;
        }
        self.count = window.failures;
        if let Some(first) = window.first {
            self.first_seen = self.first_seen.min(first);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid time")
    }

    fn tenant(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn failure<'a>(tenant_id: Uuid, signature: &'a str, secs: i64) -> Failure<'a> {
        Failure {
            tenant_id,
            signature,
            workflow_id: "checkout",
            error_code: Some("payment_timeout"),
            error_code_raw: Some("PAYMENT TIMEOUT"),
            vendor: None,
            step: None,
            occurred_at: at(secs),
            correlation_id: "c-1",
            open_after: None,
        }
    }

    #[test]
    fn failures_of_one_signature_make_one_group_counting_them_all() {
        let t = tenant(1);
        let mut second = failure(t, "sig", 5);
        second.correlation_id = "c-2";
        let groups = group_failures([failure(t, "sig", 10), second, failure(t, "sig", 7)]);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.count, 3);
        assert_eq!((g.first_seen, g.last_seen), (at(5), at(10)));
        assert_eq!(g.correlation_id, "c-1", "the first failure in the batch");
        assert_eq!(g.error_code, "payment_timeout");
        assert_eq!(
            g.error_code_raw, "PAYMENT TIMEOUT",
            "as the producer sent it"
        );
    }

    #[test]
    fn groups_come_sorted_by_tenant_then_signature() {
        let (a, b) = (tenant(1), tenant(2));
        let groups = group_failures([
            failure(b, "x", 0),
            failure(a, "y", 0),
            failure(a, "x", 0),
            failure(b, "x", 1),
        ]);
        let keys: Vec<(Uuid, &str)> = groups
            .iter()
            .map(|g| (g.tenant_id, g.signature.as_str()))
            .collect();
        assert_eq!(keys, [(a, "x"), (a, "y"), (b, "x")]);
    }

    #[test]
    fn the_latest_failure_names_the_vendor_and_step_unless_it_names_none() {
        let t = tenant(1);
        let mut early = failure(t, "sig", 1);
        early.vendor = Some("stripe");
        early.step = Some("charge");
        let mut late = failure(t, "sig", 9);
        late.vendor = Some("adyen");
        let groups = group_failures([late, early]);
        assert_eq!(groups[0].vendor.as_deref(), Some("adyen"));
        assert_eq!(
            groups[0].step.as_deref(),
            Some("charge"),
            "a later failure without a step keeps the known one"
        );
    }

    #[test]
    fn a_failure_without_an_error_code_groups_under_an_empty_one() {
        let mut f = failure(tenant(1), "sig", 0);
        f.error_code = None;
        assert_eq!(group_failures([f])[0].error_code, "");
    }

    fn gated(failures: i64, within_secs: f64) -> SignatureGroup {
        let mut f = failure(tenant(1), "sig", 100);
        f.open_after = Some(OpenAfter {
            failures,
            within_secs,
        });
        group_failures([f]).remove(0)
    }

    #[test]
    fn a_gated_window_ends_at_the_last_failure() {
        assert_eq!(gated(3, 60.0).window_start(), Some(at(40)));
        assert_eq!(
            group_failures([failure(tenant(1), "sig", 0)])[0].window_start(),
            None
        );
    }

    #[test]
    fn a_gated_group_is_held_back_until_its_window_holds_enough_failures() {
        let mut g = gated(3, 60.0);
        let two = GateWindow {
            failures: 2,
            first: Some(at(50)),
        };
        assert!(!g.passes_gate(Some(two)));
        let three = GateWindow {
            failures: 3,
            first: Some(at(50)),
        };
        assert!(g.passes_gate(Some(three)));
        assert_eq!(g.count, 3, "every failure in the window is counted");
        assert_eq!(g.first_seen, at(50));
    }

    #[test]
    fn a_gated_group_whose_signature_has_an_incident_passes() {
        let mut g = gated(3, 60.0);
        assert!(g.passes_gate(None));
        assert_eq!(g.count, 1, "only the new failure is added");
    }

    #[test]
    fn a_group_without_a_gate_always_passes() {
        let mut g = group_failures([failure(tenant(1), "sig", 0)]).remove(0);
        let none = GateWindow {
            failures: 0,
            first: None,
        };
        assert!(g.passes_gate(Some(none)));
        assert_eq!(g.count, 1);
    }
}
