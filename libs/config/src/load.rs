//! Reading and layering the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::model::Config;

/// The built-in defaults: the shipped `config/awfdrs.yaml`.
const DEFAULTS: &str = include_str!("../../../config/awfdrs.yaml");

/// The environment a configuration is read from.
pub type Env = BTreeMap<String, String>;

/// One configuration problem: where (file and key path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.path, self.reason)
    }
}

/// Every problem found while loading, at once.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problems):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Section names, in the order they are reported.
const SECTIONS: &[&str] = &[
    "namespace",
    "database",
    "nats",
    "http",
    "ingress",
    "detector",
    "analyzer",
    "coordinator",
    "scheduler",
    "notifications",
    "outbox",
    "retention",
    "consumer",
    "telemetry",
    "shutdown",
    "rules",
    "secrets",
];

/// Well-known variables and the key each one sets.
const WELL_KNOWN: &[(&str, &[&str])] = &[
    ("DATABASE_URL", &["database", "url"]),
    ("NATS_URL", &["nats", "url"]),
    ("AWFDRS_NAMESPACE", &["namespace"]),
    ("AWFDRS_HTTP_ADDR", &["http", "addr"]),
    ("LOG_FORMAT", &["telemetry", "log_format"]),
    ("AWFDRS_SECRETS_KEY", &["secrets", "key"]),
    ("AWFDRS_SECRETS_KEY_FILE", &["secrets", "key_file"]),
    ("AWFDRS_SECRETS_OLD_KEYS", &["secrets", "old_keys"]),
    (
        "AWFDRS_SECRETS_OLD_KEYS_FILE",
        &["secrets", "old_keys_file"],
    ),
];

impl Config {
    /// Loads the configuration: defaults, then `file` (if given, it must
    /// exist; if not given, `config/awfdrs.yaml` is read when present), then
    /// `env`, then `overrides` (dotted key path → value, for CLI flags).
    ///
    /// # Errors
    /// Every problem at once: unreadable or malformed files, unknown keys,
    /// wrong types and failed validation, each with its source and key path.
    pub fn load(
        file: Option<&Path>,
        env: &Env,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigErrors> {
        let mut errs = Vec::new();
        let mut root = parse_yaml("defaults", DEFAULTS, &mut errs);

        let default_path = Path::new("config/awfdrs.yaml");
        let path = file.or_else(|| default_path.exists().then_some(default_path));
        if let Some(path) = path {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let layer = parse_yaml(&name, &text, &mut errs);
                    merge(&mut root, layer);
                }
                Err(e) => errs.push(err(&name, "", format!("cannot read: {e}"))),
            }
        }

        for (var, value) in env {
            let Some(rest) = var.strip_prefix("AWFDRS__") else {
                continue;
            };
            let keys: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            set_path(&mut root, &refs, scalar(value));
        }
        for (var, keys) in WELL_KNOWN {
            if let Some(value) = env.get(*var).filter(|v| !v.is_empty()) {
                set_path(&mut root, keys, Value::String(value.clone()));
            }
        }
        for (key, value) in overrides {
            let keys: Vec<&str> = key.split('.').collect();
            set_path(&mut root, &keys, scalar(value));
        }

        let (config, broken) = deserialize_sections(&root, &mut errs);
        if let Some(config) = &config {
            // Sections that failed to parse were validated with their
            // defaults; only report what concerns the others.
            for (path, reason) in config.validate() {
                let section = path.split('.').next().unwrap_or_default();
                if !broken.contains(&section) {
                    errs.push(err("config", &path, reason));
                }
            }
        }
        match config {
            Some(c) if errs.is_empty() => Ok(c),
            _ => Err(ConfigErrors(errs)),
        }
    }

    /// Loads from the process environment.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_process_env(
        file: Option<&Path>,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigErrors> {
        let env: Env = std::env::vars().collect();
        Self::load(file, &env, overrides)
    }
}

fn err(source: &str, path: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        source: source.to_owned(),
        path: if path.is_empty() {
            "(root)".to_owned()
        } else {
            path.to_owned()
        },
        reason: reason.into(),
    }
}

fn parse_yaml(source: &str, text: &str, errs: &mut Vec<ConfigError>) -> Value {
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Null) => Value::Mapping(Mapping::new()),
        Ok(v @ Value::Mapping(_)) => v,
        Ok(_) => {
            errs.push(err(source, "", "must be a mapping of sections"));
            Value::Mapping(Mapping::new())
        }
        Err(e) => {
            errs.push(err(source, "", format!("not valid YAML: {e}")));
            Value::Mapping(Mapping::new())
        }
    }
}

/// An environment or flag value as YAML would read it, so numbers and
/// booleans get their types; anything that does not parse stays a string.
fn scalar(value: &str) -> Value {
    match serde_yaml::from_str::<Value>(value) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(value.to_owned()),
    }
}

fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Mapping(b), Value::Mapping(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, l) => *b = l,
    }
}

fn set_path(root: &mut Value, keys: &[&str], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut node = root;
    for k in parents {
        if !matches!(node, Value::Mapping(_)) {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(m) = node else { return };
        node = m
            .entry(Value::String((*k).to_owned()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    if let Value::Mapping(m) = node {
        m.insert(Value::String((*last).to_owned()), value);
    } else {
        let mut m = Mapping::new();
        m.insert(Value::String((*last).to_owned()), value);
        *node = Value::Mapping(m);
    }
}

/// Deserializes section by section so one bad section does not hide the
/// problems of another.
/// The configuration, with the sections that did not parse replaced by
/// their defaults so the rest can still be validated, and those sections.
fn deserialize_sections(
    root: &Value,
    errs: &mut Vec<ConfigError>,
) -> (Option<Config>, Vec<&'static str>) {
    let Value::Mapping(map) = root else {
        return (None, Vec::new());
    };
    let defaults = parse_yaml("defaults", DEFAULTS, &mut Vec::new());
    for key in map.keys() {
        let name = key.as_str().unwrap_or("?");
        if !SECTIONS.contains(&name) {
            errs.push(err(
                "config",
                name,
                format!("unknown key; expected one of {}", SECTIONS.join(", ")),
            ));
        }
    }
    let mut broken = Vec::new();
    let mut known = Mapping::new();
    for section in SECTIONS {
        let value = map.get(*section).cloned().unwrap_or(Value::Null);
        let before = errs.len();
        check_section(section, value.clone(), errs);
        let value = if errs.len() > before {
            broken.push(*section);
            defaults.get(*section).cloned().unwrap_or(Value::Null)
        } else {
            value
        };
        known.insert(Value::String((*section).to_owned()), value);
    }
    match serde_yaml::from_value::<Config>(Value::Mapping(known)) {
        Ok(c) => (Some(c), broken),
        Err(e) => {
            errs.push(err("config", "", e.to_string()));
            (None, broken)
        }
    }
}

fn check_section(section: &str, value: Value, errs: &mut Vec<ConfigError>) {
    use crate::model::*;
    fn one<T: DeserializeOwned>(section: &str, value: Value, errs: &mut Vec<ConfigError>) {
        if let Err(e) = serde_path_to_error::deserialize::<_, T>(value) {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                section.to_owned()
            } else {
                format!("{section}.{inner}")
            };
            errs.push(err("config", &path, e.into_inner().to_string()));
        }
    }
    match section {
        "namespace" => one::<String>(section, value, errs),
        "database" => one::<DatabaseConfig>(section, value, errs),
        "nats" => one::<NatsConfig>(section, value, errs),
        "http" => one::<HttpConfig>(section, value, errs),
        "ingress" => one::<IngressConfig>(section, value, errs),
        "detector" => one::<DetectorConfig>(section, value, errs),
        "analyzer" => one::<AnalyzerConfig>(section, value, errs),
        "coordinator" => one::<CoordinatorConfig>(section, value, errs),
        "scheduler" => one::<SchedulerConfig>(section, value, errs),
        "notifications" => one::<NotificationsConfig>(section, value, errs),
        "outbox" => one::<OutboxConfig>(section, value, errs),
        "retention" => one::<RetentionConfig>(section, value, errs),
        "consumer" => one::<ConsumerConfig>(section, value, errs),
        "telemetry" => one::<TelemetryConfig>(section, value, errs),
        "shutdown" => one::<ShutdownConfig>(section, value, errs),
        "rules" => one::<RulesConfig>(section, value, errs),
        "secrets" => one::<crate::SecretsConfig>(section, value, errs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load(None, &Env::new(), &[]).expect("defaults are valid");
        assert_eq!(c.namespace, "awfdrs");
        assert_eq!(c.http.max_batch_items, 500);
    }

    #[test]
    fn well_known_variables_and_sections_override_defaults() {
        let c = Config::load(
            None,
            &env(&[
                ("DATABASE_URL", "postgres://u@h/db"),
                ("NATS_URL", "nats://h:4333"),
                ("AWFDRS_NAMESPACE", "t1"),
                ("AWFDRS__DETECTOR__BATCH_SIZE", "42"),
                ("LOG_FORMAT", "json"),
            ]),
            &[("http.addr", "0.0.0.0:9000".to_owned())],
        )
        .expect("valid");
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.nats.url, "nats://h:4333");
        assert_eq!(c.namespace, "t1");
        assert_eq!(c.detector.batch_size, 42);
        assert_eq!(c.telemetry.log_format, crate::LogFormat::Json);
        assert_eq!(c.http.addr, "0.0.0.0:9000");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_path() {
        let errs = Config::load(
            None,
            &env(&[
                ("AWFDRS_NAMESPACE", "Bad Name"),
                ("AWFDRS__DETECTOR__BATCH_SIZE", "lots"),
                ("AWFDRS__HTTP__COLOUR", "blue"),
                ("AWFDRS__BOGUS__X", "1"),
            ]),
            &[],
        )
        .expect_err("invalid");
        let text = errs.to_string();
        for needle in ["detector.batch_size", "http", "colour", "bogus"] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        // A section that fails to parse does not hide the validation of the
        // others.
        assert!(errs.0.iter().any(|e| e.path == "namespace"), "{text}");
    }

    #[test]
    fn validation_reports_all_range_problems() {
        let errs = Config::load(
            None,
            &env(&[
                ("AWFDRS_NAMESPACE", "Bad Name"),
                ("AWFDRS__HTTP__MAX_BATCH_ITEMS", "0"),
                ("AWFDRS_HTTP_ADDR", "nowhere"),
            ]),
            &[],
        )
        .expect_err("invalid");
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["namespace", "http.addr", "http.max_batch_items"]);
    }

    #[test]
    fn only_the_built_in_analysis_engine_is_accepted() {
        let errs = Config::load(
            None,
            &env(&[("AWFDRS__ANALYZER__ENGINE", "remote-llm")]),
            &[],
        )
        .expect_err("no such engine");
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["analyzer.engine"]);
    }

    #[test]
    fn the_hold_check_interval_must_be_at_least_ten_milliseconds() {
        let ok = Config::load(None, &env(&[]), &[]).expect("defaults are valid");
        assert!(ok.coordinator.hold_check_ms >= 10);
        let errs = Config::load(
            None,
            &env(&[("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "9")]),
            &[],
        )
        .expect_err("too often");
        let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["coordinator.hold_check_ms"]);
    }
}
