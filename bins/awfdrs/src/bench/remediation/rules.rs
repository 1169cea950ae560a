//! The rules the remediation modes run under, written to a directory of
//! their own for the run: one transient error code whose retry policy is
//! due 1 ms after the decision (fixed, no jitter), so what is measured is
//! the system's latency and not a policy's delay; rate limits and hard
//! limits far above the load, so admission checks every limit but paces
//! and stops nothing; breakers that need far more calls than the bench
//! makes before they could open. What each figure was measured under is
//! printed with it ([`SUMMARY`]).

use std::path::{Path, PathBuf};

/// The error code of every bench failure.
pub(super) const CODE: &str = "bench_transient";
/// Its retry policy.
pub(in crate::bench) const POLICY: &str = "bench_now";

/// The rules in one line, for the printout.
pub(in crate::bench) const SUMMARY: &str = "retry policy bench_now: fixed 1 ms, no jitter (retries due \
     at once); rate limits 1,000,000/s (tenant and vendor); hard limits 1,000,000,000 per run, \
     incident and vendor-hour; breakers closed";

const ERROR_CODES: &str = "\
default:
  severity: medium
  category: permanent
  vendor_fault: false
  retry_policy: none
  description: Not a bench code.
codes:
  bench_transient:
    severity: medium
    category: transient
    vendor_fault: false
    retry_policy: bench_now
    description: A transient failure of the bench, retried at once.
";

const RETRY_POLICIES: &str = "\
policies:
  bench_now:
    kind: fixed
    initial_delay: 1ms
    max_delay: 1ms
    max_attempts: 5
    jitter: false
";

/// Limits far above any load, breakers that cannot open; other modes add
/// their own vendors to it.
pub(in crate::bench) const VENDOR_CONFIG: &str = "\
defaults:
  breaker:
    minimum_calls: 1000000000
  rate_limit:
    retries_per_second: 1000000
    burst: 1000000
tenant_rate_limit:
  retries_per_second: 1000000
  burst: 1000000
hard_limits:
  max_retries_per_run: 1000000000
  max_retries_per_incident: 1000000000
  max_retries_per_vendor_per_hour: 1000000000
";

/// A rules directory that lives as long as the run.
#[derive(Debug)]
pub(in crate::bench) struct BenchRules {
    dir: PathBuf,
}

impl BenchRules {
    /// Writes the three files to a new directory named after `run_id`.
    pub(super) fn write(run_id: &str) -> std::io::Result<Self> {
        Self::write_codes(run_id, ERROR_CODES)
    }

    /// The same with other error codes (`error_codes.yaml`), whose
    /// retryable ones name the policy [`POLICY`].
    pub(in crate::bench) fn write_codes(run_id: &str, error_codes: &str) -> std::io::Result<Self> {
        Self::write_all(run_id, error_codes, RETRY_POLICIES, VENDOR_CONFIG)
    }

    /// The three files as given.
    pub(in crate::bench) fn write_all(
        run_id: &str,
        error_codes: &str,
        retry_policies: &str,
        vendor_config: &str,
    ) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("awfdrs-bench-{run_id}-rules"));
        std::fs::create_dir_all(&dir)?;
        for (file, text) in [
            (awfdrs_rules::ERROR_CODES_FILE, error_codes),
            (awfdrs_rules::RETRY_POLICIES_FILE, retry_policies),
            (awfdrs_rules::VENDOR_CONFIG_FILE, vendor_config),
        ] {
            std::fs::write(dir.join(file), text)?;
        }
        Ok(Self { dir })
    }

    /// The directory, for `rules.dir`.
    pub(in crate::bench) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for BenchRules {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bench_rules_load_and_retry_at_once_without_limits() {
        let rules = BenchRules::write(&format!("test{}", std::process::id())).expect("written");
        let loaded = awfdrs_rules::Rules::load(rules.dir()).expect("the bench rules load");
        let (name, policy) = loaded.retry_policy_for(CODE).expect("a policy");
        assert_eq!(name, POLICY);
        assert_eq!(
            awfdrs_safety::retry::delay(policy, 1, Duration::ZERO, 7),
            Some(Duration::from_millis(1))
        );
        assert!(!loaded.error_code(CODE).vendor_fault);
        assert!(loaded.tenant_rate_limit().retries_per_second >= 1_000_000.0);
        assert!(loaded.vendor("any").rate_limit.retries_per_second >= 1_000_000.0);
        assert!(loaded.hard_limits().max_retries_per_vendor_per_hour >= 1_000_000_000);
        let dir = rules.dir().to_owned();
        drop(rules);
        assert!(!dir.exists());
    }
}
