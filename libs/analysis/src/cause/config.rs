//! The tenant's own configuration: auth and validation failures that no
//! other tenant sees with the same code, and that nothing else the tenant
//! sends the vendor escapes.

use awfdrs_domain::decision::{Category, CauseKind, Classification, Evidence, round2};

use super::{Scored, fact, own_events};
use crate::input::{AnalysisInput, VendorFacts};
use crate::names;

/// The tenant's configuration as the cause.
pub(crate) fn configuration(input: &AnalysisInput, class: &Classification) -> Scored {
    let category = class.category;
    let base = base_score(category);
    // Facts about the vendor only bear on failures that can be configuration.
    let vendor = input.vendor.as_ref().filter(|_| base > 0.0);
    let score = base + vendor.map_or(0.0, |v| vendor_adjustment(v, category));
    let against = against(input, vendor, category, base);
    let summary = if round2(score) > 0.0 {
        summary(input, vendor, category)
    } else {
        against.clone()
    };
    Scored::new(
        CauseKind::TenantConfiguration,
        score,
        0.95,
        summary,
        evidence(input, vendor, category),
        against,
    )
}

/// Credentials are configuration more surely than a refused request is.
fn base_score(category: Category) -> f64 {
    match category {
        Category::Auth => 0.55,
        Category::Validation => 0.4,
        _ => 0.0,
    }
}

/// Stronger when no other tenant sees the code and when nothing the tenant
/// sends the vendor works; weaker when others see it too, or when the
/// tenant's other requests to the vendor pass validation.
fn vendor_adjustment(v: &VendorFacts, category: Category) -> f64 {
    let mut adjust = if v.other_tenants_same_code == 0 {
        0.2
    } else {
        -0.3
    };
    if v.tenant_successes_elsewhere == 0 && v.tenant_failures > 0 {
        adjust += 0.15;
    } else if category == Category::Validation {
        adjust -= 0.1;
    }
    adjust
}

fn summary(input: &AnalysisInput, vendor: Option<&VendorFacts>, category: Category) -> String {
    let code = &input.incident.inputs.error_code;
    let settings = format!("this tenant's own {} settings", names::category(category));
    match vendor.map(|v| v.other_tenants_same_code) {
        Some(0) => format!("{settings}: {code} is seen from this tenant only"),
        Some(n) => format!("{settings}, though {n} other tenants see {code} too"),
        None => settings,
    }
}

/// The strongest fact against configuration.
fn against(
    input: &AnalysisInput,
    vendor: Option<&VendorFacts>,
    category: Category,
    base: f64,
) -> String {
    let code = &input.incident.inputs.error_code;
    match vendor {
        None if base > 0.0 => "no vendor to compare other tenants' failures with".to_owned(),
        None => format!(
            "{} failures are not a matter of configuration",
            names::category(category)
        ),
        Some(v) if v.other_tenants_same_code > 0 => {
            format!("{} other tenants see {code} too", v.other_tenants_same_code)
        }
        Some(_) => "the code is seen from this tenant only".to_owned(),
    }
}

/// The classification with the events, then who else sees the code and
/// what of the tenant's still works.
fn evidence(
    input: &AnalysisInput,
    vendor: Option<&VendorFacts>,
    category: Category,
) -> Vec<Evidence> {
    let code = &input.incident.inputs.error_code;
    let f = &input.failures;
    let mut evidence = vec![Evidence {
        count: Some(f.count),
        first_at: Some(f.first_at),
        last_at: Some(f.last_at),
        event_ids: own_events(input),
        ..fact(format!(
            "the failures are classified {}",
            names::category(category)
        ))
    }];
    if let Some(v) = vendor {
        evidence.push(Evidence {
            count: Some(v.other_tenants_same_code),
            window_secs: Some(v.window_secs),
            ..fact(format!("other tenants seeing {code} from {}", v.vendor))
        });
        evidence.push(Evidence {
            count: Some(v.tenant_successes_elsewhere),
            window_secs: Some(v.window_secs),
            ..fact(format!(
                "this tenant's successful calls to {} in other workflows or steps",
                v.vendor
            ))
        });
    }
    evidence
}
