//! Tenant isolation: a decision that cites a vendor outage across tenants
//! carries the other tenants as counts only. The other tenants' events
//! here are reduced to the aggregates the store hands the engine, and the
//! decision is searched for anything of theirs.

mod common;

use std::collections::BTreeSet;

use awfdrs_analysis::{Analyst, LocalAnalyst, explain};
use awfdrs_domain::decision::CauseKind;
use serde_json::Value;
use uuid::Uuid;

/// One other tenant's event with the vendor.
struct Foreign {
    tenant_id: Uuid,
    tenant: &'static str,
    workflow: &'static str,
    event_id: Uuid,
    failed: bool,
    code: &'static str,
    message: &'static str,
}

fn foreign_events() -> Vec<Foreign> {
    let tenants = [
        (0xB0B, "globex", "globex-billing"),
        (0xC0C, "initech", "tps-reports"),
        (0xD0D, "umbrella", "umbrella-payments"),
    ];
    let mut events = Vec::new();
    for (t, (tid, tenant, workflow)) in tenants.into_iter().enumerate() {
        for n in 0..10_u128 {
            events.push(Foreign {
                tenant_id: common::id(tid),
                tenant,
                workflow,
                event_id: common::id(0xF000_0000 + (t as u128) * 100 + n),
                failed: n < 8,
                code: "payment_timeout",
                message: "globex-secret: upstream reset for customer 4242",
            });
        }
    }
    events
}

/// Every string in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out);
        }),
        _ => {}
    }
}

#[test]
fn a_cross_tenant_outage_decision_carries_the_other_tenants_as_counts_only() {
    let world = foreign_events();
    let mut input = common::vendor_outage_with_history();
    let tenants: BTreeSet<Uuid> = world
        .iter()
        .filter(|e| e.failed)
        .map(|e| e.tenant_id)
        .collect();
    if let Some(v) = input.vendor.as_mut() {
        v.other_tenants_failing = i64::try_from(tenants.len()).expect("small");
        v.other_tenant_failures =
            i64::try_from(world.iter().filter(|e| e.failed).count()).expect("small");
        v.other_tenant_successes =
            i64::try_from(world.iter().filter(|e| !e.failed).count()).expect("small");
        v.other_tenants_same_code = i64::try_from(
            world
                .iter()
                .filter(|e| e.code == input.incident.inputs.error_code)
                .map(|e| e.tenant_id)
                .collect::<BTreeSet<_>>()
                .len(),
        )
        .expect("small");
    }
    let decision = LocalAnalyst::new().analyze(&input);
    assert_eq!(decision.root_cause.hypothesis.kind, CauseKind::VendorOutage);

    // The outage is cited, by count.
    let cited = decision
        .root_cause
        .hypothesis
        .evidence
        .iter()
        .find(|e| e.fact.starts_with("other tenants failing"))
        .expect("cross-tenant evidence");
    assert_eq!(cited.count, Some(3));
    assert!(
        cited.fact.contains("24 failures, 6 successes"),
        "{}",
        cited.fact
    );
    assert!(cited.event_ids.is_empty());

    // Nothing of theirs: no id, slug, workflow, message or event.
    let json = serde_json::to_value(&decision).expect("serialises");
    let text = format!("{json}\n{}", explain::render(&decision));
    for e in &world {
        for theirs in [
            e.tenant_id.to_string(),
            e.event_id.to_string(),
            e.tenant.to_owned(),
            e.workflow.to_owned(),
            e.message.to_owned(),
            "globex-secret".to_owned(),
        ] {
            assert!(!text.contains(&theirs), "the decision contains {theirs:?}");
        }
    }

    // Every id in the decision is this tenant's own.
    let own: BTreeSet<Uuid> = [decision.id, input.incident.id, input.incident.tenant_id]
        .into_iter()
        .chain(input.failures.sample_event_ids.iter().copied())
        .chain(input.step.last_success_event)
        .chain(input.past.iter().map(|p| p.id))
        .collect();
    let mut all = Vec::new();
    strings(&json, &mut all);
    for s in all {
        for word in s.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
            if let Ok(id) = Uuid::parse_str(word) {
                assert!(own.contains(&id), "a foreign id in the decision: {id}");
            }
        }
    }
}
