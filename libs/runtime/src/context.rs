//! The connections and registries a process builds once and every worker
//! in it shares.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use awfdrs_bus::{Bus, Namespace, topology::ConsumerSettings};
use awfdrs_config::Config;
use awfdrs_guard::{BreakerOptions, Breakers, HardLimiter, RateLimits};
use awfdrs_rules::RulesHandle;
use awfdrs_store::Store;
use awfdrs_telemetry::{Health, Metrics};

use crate::StoreDeadLetters;

/// Rows per transaction when secrets are sealed at start.
const SEAL_BATCH: i64 = 500;

/// What every worker is given: configuration, connections and metrics.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    /// The rules, swapped whole on reload.
    pub rules: Arc<RulesHandle>,
    /// The breakers, as this process sees them: one view per process, kept
    /// current by the one watch [`crate::Harness::start`] runs.
    pub breakers: Breakers,
    /// The shared retry rate limits (GCRA in KV, compare-and-set).
    pub rate_limits: RateLimits,
    /// The hard retry limits, counted in PostgreSQL.
    pub hard_limits: HardLimiter,
    /// What the process's tasks say about themselves, for `/ready`.
    pub health: Health,
}

impl Context {
    /// Connects to PostgreSQL and NATS as configured.
    ///
    /// # Errors
    /// When either cannot be reached.
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let rules = RulesHandle::load(&config.rules.dir)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading rules from {}", config.rules.dir))?;
        let store = Store::connect(
            &config.database.url,
            config.database.max_connections,
            Duration::from_millis(config.database.acquire_timeout_ms),
        )
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                redact(&config.database.url)
            )
        })?;
        let store = crate::with_keys(store, &config)?;
        let ns = Namespace::new(config.namespace.clone()).map_err(anyhow::Error::msg)?;
        let bus = Bus::connect(
            &config.nats.url,
            ns,
            config.nats.replicas,
            Duration::from_millis(config.nats.connect_timeout_ms),
            Duration::from_millis(config.nats.publish_timeout_ms),
        )
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
        check_server_version(&bus.server_version())?;
        let rules = Arc::new(rules);
        let metrics = Arc::new(Metrics::new());
        let breakers = Breakers::open(
            &bus,
            store.clone(),
            rules.clone(),
            metrics.clone(),
            BreakerOptions::new(process_name()),
        )
        .await
        .context("reading the breakers")?;
        let rate_limits = RateLimits::open(&bus, metrics.clone())
            .await
            .context("opening the rate limits")?;
        let hard_limits = HardLimiter::new(store.clone(), metrics.clone());
        Ok(Self {
            config: Arc::new(config),
            store,
            bus,
            metrics,
            rules,
            breakers,
            rate_limits,
            hard_limits,
            health: Health::new(),
        })
    }

    /// Applies migrations, seals the secrets still stored in plain text
    /// (when this process has the key) and declares the streams: what
    /// `awfdrs migrate` and `awfdrs up` do before the workers start.
    /// Idempotent.
    ///
    /// # Errors
    /// When any of them fails.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        self.store.migrate().await.context("applying migrations")?;
        if self.store.keyring().is_some() {
            let report = self
                .store
                .reseal_secrets(SEAL_BATCH, true)
                .await
                .context("sealing secrets stored in plain text")?;
            if report.changed() > 0 {
                tracing::info!(
                    sealed = report.changed(),
                    "secrets stored in plain text sealed"
                );
            }
        }
        self.bus
            .declare_streams()
            .await
            .context("declaring JetStream streams")?;
        Ok(())
    }

    /// The sink that records this process's dead letters.
    pub fn dead_letter_sink(&self) -> Arc<StoreDeadLetters> {
        Arc::new(StoreDeadLetters::new(self.store.clone()))
    }

    /// The consumer settings of the configuration.
    pub fn consumer_settings(&self) -> ConsumerSettings {
        let c = &self.config.consumer;
        ConsumerSettings {
            max_deliver: c.max_deliver,
            ack_wait: Duration::from_secs(c.ack_wait_secs),
            max_ack_pending: c.max_ack_pending,
        }
    }
}

/// This process in audit trails: its program's name and its pid.
fn process_name() -> String {
    let program = std::env::args_os()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "awfdrs".to_owned());
    format!("{program}-{}", std::process::id())
}

/// AWFDRS needs nats-server 2.10 or later (KV compare-and-set semantics,
/// consumer updates).
fn check_server_version(version: &str) -> anyhow::Result<()> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (2, 10) {
        anyhow::bail!(
            "nats-server {version} is too old: AWFDRS needs 2.10 or later (2.10.23+ in production)"
        );
    }
    Ok(())
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn old_servers_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("2.10.23").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
    }
}
