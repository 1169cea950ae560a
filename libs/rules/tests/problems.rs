//! Invalid rules are rejected with the file, key path and reason of every problem.

use awfdrs_rules::{RuleSources, Rules, RulesErrors};

const CODES: &str = "
codes:
  card_declined:
    severity: low
    category: permanent
    retry_policy: none
";

const POLICIES: &str = "
policies:
  standard:
    kind: exponential
    initial_delay: 1s
    max_delay: 1m
    max_attempts: 3
";

const VENDORS: &str = "
vendors:
  stripe:
    breaker:
      minimum_calls: 10
";

fn load(codes: &str, policies: &str, vendors: &str) -> Result<Rules, RulesErrors> {
    Rules::from_sources(&RuleSources {
        error_codes: codes,
        retry_policies: policies,
        vendor_config: vendors,
    })
}

fn lines(e: &RulesErrors) -> Vec<String> {
    e.errors().iter().map(ToString::to_string).collect()
}

#[test]
fn minimal_rules_load() {
    let rules = load(CODES, POLICIES, VENDORS).unwrap();
    assert_eq!(rules.vendor("stripe").breaker.minimum_calls, 10);
}

#[test]
fn an_unknown_key_is_rejected_naming_the_key_and_its_path() {
    let codes = CODES.replace(
        "retry_policy: none",
        "retry_policy: none\n    retyr_policy: none",
    );
    let err = load(&codes, POLICIES, VENDORS).unwrap_err();
    let e = &err.errors()[0];
    assert_eq!(e.file, "error_codes.yaml");
    assert_eq!(e.path, "codes.card_declined.retyr_policy");
    assert!(e.reason.contains("unknown field `retyr_policy`"), "{e}");
    assert!(e.reason.contains("line 7"), "{e}");
}

#[test]
fn an_unknown_key_in_a_vendor_override_is_rejected() {
    let vendors = VENDORS.replace("minimum_calls", "minimum_cals");
    let err = load(CODES, POLICIES, &vendors).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err.errors()[0].path, "vendors.stripe.breaker.minimum_cals");
    assert!(
        err.errors()[0]
            .reason
            .contains("unknown field `minimum_cals`")
    );
}

#[test]
fn a_type_error_names_the_key_path() {
    let policies = POLICIES.replace("max_delay: 1m", "max_delay: 60");
    let err = load(CODES, &policies, VENDORS).unwrap_err();
    let e = &err.errors()[0];
    assert_eq!(
        (e.file.as_str(), e.path.as_str()),
        ("retry_policies.yaml", "policies.standard.max_delay")
    );
    assert!(e.reason.contains("missing unit"), "{e}");
    let policies = POLICIES.replace("max_delay: 1m", "max_delay: [1m]");
    let err = load(CODES, &policies, VENDORS).unwrap_err();
    assert!(
        err.to_string().contains("expected a duration such as"),
        "{err}"
    );
}

#[test]
fn a_key_written_twice_is_rejected() {
    let codes = format!("{CODES}  card_declined:\n    severity: high\n    category: permanent\n");
    let err = load(&codes, POLICIES, VENDORS).unwrap_err();
    assert!(
        err.to_string().contains("duplicate key \"card_declined\""),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let codes = "
codes:
  card_declined:
    severity: low
    category: validation
    retry_policy: fast
  Bad.Code:
    severity: low
    category: permanent
    retry_policy: standard
    open_after: { count: 0, within: 1m }
";
    let policies = "
policies:
  standard:
    kind: linear
    initial_delay: 10s
    multiplier: 3
    max_delay: 5s
    max_attempts: 0
";
    let vendors = "
defaults:
  breaker:
    window: 0s
vendors:
  Stripe:
    breaker:
      failure_rate_threshold: 1.5
  adyen:
    breaker:
      window: 60s
      bucket: 7s
    rate_limit:
      burst: 0
";
    let err = load(codes, policies, vendors).unwrap_err();
    let got = lines(&err);
    let expected = [
        "error_codes.yaml: codes.Bad.Code: \"Bad.Code\" is not a code slug",
        "error_codes.yaml: codes.Bad.Code.retry_policy: a permanent error is never retried; use none",
        "error_codes.yaml: codes.Bad.Code.open_after.count: must be at least 1",
        "error_codes.yaml: codes.card_declined.retry_policy: unknown policy \"fast\"",
        "retry_policies.yaml: policies.standard.max_delay: 5s is shorter than initial_delay 10s",
        "retry_policies.yaml: policies.standard.max_attempts: must be at least 1",
        "retry_policies.yaml: policies.standard.multiplier: only applies to kind exponential",
        "vendor_config.yaml: defaults.breaker.window: must be greater than zero",
        "vendor_config.yaml: vendors.Stripe: \"Stripe\" is not a vendor slug",
        "vendor_config.yaml: vendors.Stripe.breaker.failure_rate_threshold: must be greater than 0 and at most 1, got 1.5",
        "vendor_config.yaml: vendors.adyen.breaker.bucket: window 1m is not a whole number of buckets of 7s",
        "vendor_config.yaml: vendors.adyen.rate_limit.burst: must be at least 1",
    ];
    for want in expected {
        assert!(
            got.iter().any(|line| line.starts_with(want)),
            "missing {want:?} in:\n{err}"
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "unexpected extra problems:\n{err}"
    );
    // One line per problem.
    assert_eq!(err.to_string().lines().count(), expected.len());
}

#[test]
fn a_file_that_does_not_parse_does_not_hide_problems_in_the_others() {
    let err = load(
        "codes: [",
        POLICIES,
        "hard_limits: { max_retries_per_run: -1 }",
    )
    .unwrap_err();
    let files: Vec<&str> = err.errors().iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, ["error_codes.yaml", "vendor_config.yaml"], "{err}");
    assert_eq!(err.errors()[1].path, "hard_limits.max_retries_per_run");
}

#[test]
fn a_missing_file_is_reported_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = Rules::load(dir.path()).unwrap_err();
    assert_eq!(err.len(), 3);
    assert!(
        err.errors()[0]
            .to_string()
            .starts_with("error_codes.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn a_code_mode_and_the_approval_threshold_are_read() {
    let codes = "
approve_min_severity: high
default:
  severity: critical
  category: permanent
  retry_policy: none
  mode: approve
codes:
  card_declined:
    severity: low
    category: permanent
    retry_policy: none
    mode: shadow
";
    let rules = load(codes, POLICIES, VENDORS).unwrap();
    assert_eq!(
        rules.mode_for("card_declined"),
        Some(awfdrs_rules::Mode::Shadow)
    );
    assert_eq!(
        rules.mode_for("unlisted"),
        Some(awfdrs_rules::Mode::Approve)
    );
    assert_eq!(rules.approve_min_severity(), awfdrs_rules::Severity::High);
    let plain = load(CODES, POLICIES, VENDORS).unwrap();
    assert_eq!(plain.mode_for("card_declined"), None);
    assert_eq!(plain.approve_min_severity(), awfdrs_rules::Severity::Low);
}

#[test]
fn an_unknown_mode_is_rejected_naming_the_key() {
    let codes = CODES.replace("retry_policy: none", "retry_policy: none\n    mode: manual");
    let err = load(&codes, POLICIES, VENDORS).unwrap_err();
    let e = &err.errors()[0];
    assert_eq!(e.path, "codes.card_declined.mode");
    assert!(e.reason.contains("unknown variant `manual`"), "{e}");
}

#[test]
fn approve_below_the_approval_threshold_is_rejected_as_having_no_effect() {
    let codes = format!(
        "approve_min_severity: medium\n{}",
        CODES.replace(
            "retry_policy: none",
            "retry_policy: none\n    mode: approve"
        )
    );
    let err = load(&codes, POLICIES, VENDORS).unwrap_err();
    assert_eq!(
        lines(&err),
        [
            "error_codes.yaml: codes.card_declined.mode: approve has no effect: severity low is below approve_min_severity medium"
        ]
    );
    let bad = "approve_min_severity: severe\n";
    let err = load(bad, POLICIES, VENDORS).unwrap_err();
    assert_eq!(err.errors()[0].path, "approve_min_severity");
}

#[test]
fn notify_after_is_the_codes_else_the_severitys_and_never_for_critical() {
    use awfdrs_rules::Severity;
    use std::time::Duration;
    let codes = "
notify_after: { low: 2m, medium: 1m, high: 0s }
default:
  severity: medium
  category: permanent
  retry_policy: none
codes:
  card_declined:
    severity: low
    category: permanent
    retry_policy: none
    notify_after: 5s
";
    let rules = load(codes, POLICIES, VENDORS).unwrap();
    assert_eq!(
        rules.notify_after("card_declined", Severity::Low),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        rules.notify_after("unlisted", Severity::Low),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        rules.notify_after("unlisted", Severity::Medium),
        Some(Duration::from_secs(60))
    );
    // Zero is at once; so is critical, whatever the code says.
    assert_eq!(rules.notify_after("unlisted", Severity::High), None);
    assert_eq!(
        rules.notify_after("card_declined", Severity::Critical),
        None
    );
    let critical = codes.replace("high: 0s", "critical: 1m");
    let err = load(&critical, POLICIES, VENDORS).unwrap_err();
    assert!(err.to_string().contains("critical"), "{err}");
}
