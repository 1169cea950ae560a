//! Reading and parsing the three files, then validating them together.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{RulesError, RulesErrors};
use crate::schema::{ErrorCodesFile, RetryPoliciesFile, VendorConfigFile};
use crate::validate::validate;
use crate::{ERROR_CODES_FILE, RETRY_POLICIES_FILE, Rules, VENDOR_CONFIG_FILE, VendorSettings};

/// The text of the three rules files, for loading without a directory
/// (tests, embedded defaults).
#[derive(Debug, Clone, Copy)]
pub struct RuleSources<'a> {
    /// Contents of `error_codes.yaml`.
    pub error_codes: &'a str,
    /// Contents of `retry_policies.yaml`.
    pub retry_policies: &'a str,
    /// Contents of `vendor_config.yaml`.
    pub vendor_config: &'a str,
}

impl Rules {
    /// Loads and validates the rules in `dir` (`error_codes.yaml`,
    /// `retry_policies.yaml`, `vendor_config.yaml`).
    ///
    /// # Errors
    /// Every problem found, in any of the files, each naming its file, key
    /// path and reason: unreadable files, YAML and type errors, unknown keys,
    /// and invalid or inconsistent values.
    pub fn load(dir: &Path) -> Result<Self, RulesErrors> {
        let mut errors = Vec::new();
        let mut read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    let reason = format!("cannot read {}: {e}", path.display());
                    errors.push(RulesError::new(file, "", reason));
                })
                .ok()
        };
        let codes = read(ERROR_CODES_FILE);
        let policies = read(RETRY_POLICIES_FILE);
        let vendors = read(VENDOR_CONFIG_FILE);
        build(
            codes.as_deref(),
            policies.as_deref(),
            vendors.as_deref(),
            errors,
        )
    }

    /// Parses and validates rules from the files' text.
    ///
    /// # Errors
    /// As [`Rules::load`], less the file-reading ones.
    pub fn from_sources(sources: &RuleSources<'_>) -> Result<Self, RulesErrors> {
        build(
            Some(sources.error_codes),
            Some(sources.retry_policies),
            Some(sources.vendor_config),
            Vec::new(),
        )
    }
}

/// Parses the files that could be read and validates what parsed, adding to
/// `errors`; rules come out only when nothing at all is wrong.
fn build(
    codes: Option<&str>,
    policies: Option<&str>,
    vendors: Option<&str>,
    mut errors: Vec<RulesError>,
) -> Result<Rules, RulesErrors> {
    let codes = codes.and_then(|t| parse::<ErrorCodesFile>(ERROR_CODES_FILE, t, &mut errors));
    let policies =
        policies.and_then(|t| parse::<RetryPoliciesFile>(RETRY_POLICIES_FILE, t, &mut errors));
    let vendors =
        vendors.and_then(|t| parse::<VendorConfigFile>(VENDOR_CONFIG_FILE, t, &mut errors));
    errors.extend(validate(
        codes.as_ref(),
        policies.as_ref(),
        vendors.as_ref(),
    ));
    match (codes, policies, vendors) {
        (Some(codes), Some(policies), Some(vendors)) if errors.is_empty() => {
            Ok(assemble(codes, policies, vendors))
        }
        _ => Err(RulesErrors::new(errors)),
    }
}

/// Parses one file, recording a type or syntax error with its key path.
fn parse<T: DeserializeOwned + Default>(
    file: &str,
    text: &str,
    errors: &mut Vec<RulesError>,
) -> Option<T> {
    // An empty or comment-only file is a document with nothing in it: all defaults.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Some(T::default());
    }
    let de = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = e.inner().to_string();
            // The YAML error already starts with its own copy of the path.
            let reason = message
                .strip_prefix(&format!("{path}: "))
                .map_or_else(|| message.clone(), str::to_owned);
            errors.push(RulesError::new(file, path, reason));
            None
        }
    }
}

/// Builds the lookup structure from files that passed validation.
fn assemble(
    codes: ErrorCodesFile,
    policies: RetryPoliciesFile,
    vendors: VendorConfigFile,
) -> Rules {
    let defaults = VendorSettings {
        breaker: vendors.defaults.breaker,
        rate_limit: vendors.defaults.rate_limit,
    };
    let merged: BTreeMap<String, VendorSettings> = vendors
        .vendors
        .0
        .iter()
        .map(|(name, o)| {
            let settings = VendorSettings {
                breaker: o.breaker.apply(defaults.breaker),
                rate_limit: o.rate_limit.apply(defaults.rate_limit),
            };
            (name.clone(), settings)
        })
        .collect();
    Rules {
        approve_min_severity: codes.approve_min_severity.unwrap_or(crate::Severity::Low),
        notify_after: codes.notify_after,
        codes: codes.codes.0,
        default_code: codes
            .default
            .unwrap_or_else(crate::ErrorRule::builtin_default),
        policies: policies.policies.0,
        vendor_defaults: defaults,
        vendors: merged,
        tenant_rate_limit: vendors.tenant_rate_limit,
        hard_limits: vendors.hard_limits,
    }
}
