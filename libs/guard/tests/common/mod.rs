//! What every guard test needs: its own database (migrated), its own NATS
//! namespace, rules written to a temporary directory, and a way to wait for
//! a condition with a deadline.

#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_bus::{Bus, Namespace};
use awfdrs_guard::names::{BREAKERS_BUCKET, RATELIMITS_BUCKET};
use awfdrs_guard::{BreakerOptions, Breakers};
use awfdrs_rules::RulesHandle;
use awfdrs_store::Store;
use awfdrs_telemetry::Metrics;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

/// Breaker settings for tests: a long window and open duration, so nothing
/// moves unless the test moves it; vendor `flaky` opens and probes fast.
pub const VENDOR_CONFIG: &str = "
defaults:
  breaker:
    failure_rate_threshold: 0.5
    window: 10m
    bucket: 1m
    minimum_calls: 200
    min_distinct_sources: 2
    open_duration: 1h
    half_open_probes: 1
    probe_timeout: 1s
    successes_to_close: 1
  rate_limit:
    retries_per_second: 5
    burst: 10
tenant_rate_limit:
  retries_per_second: 5
  burst: 10
hard_limits:
  max_retries_per_run: 3
  max_retries_per_incident: 5
  max_retries_per_vendor_per_hour: 8
vendors:
  flaky:
    breaker:
      minimum_calls: 10
      open_duration: 1s
      probe_timeout: 1s
";

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4333".to_owned())
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/awfdrs".to_owned())
}

/// One test's world: a fresh database and namespace, torn down by `finish`.
pub struct World {
    pub ns: String,
    pub db: String,
    pub db_url: String,
    pub bus: Bus,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub rules_dir: tempfile::TempDir,
    pub rules: Arc<RulesHandle>,
    finished: bool,
}

impl World {
    pub async fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let ns = format!("t{}", &id[..8]);
        let db = format!("awfdrs_t_{id}");
        let admin = PgConnectOptions::from_str(&database_url()).unwrap();
        let mut conn = admin.connect().await.unwrap();
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let options = admin.database(&db);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .unwrap();
        let store = Store::from_pool(pool);
        store.migrate().await.unwrap();
        let timeout = Duration::from_secs(5);
        let bus = Bus::connect(
            &nats_url(),
            Namespace::new(ns.clone()).unwrap(),
            1,
            timeout,
            timeout,
        )
        .await
        .unwrap();
        let rules_dir = tempfile::tempdir().unwrap();
        write_rules(rules_dir.path(), VENDOR_CONFIG);
        let rules = Arc::new(RulesHandle::load(rules_dir.path()).unwrap());
        let db_url = options.to_url_lossy().to_string();
        Self {
            ns,
            db,
            db_url,
            bus,
            store,
            metrics: Arc::new(Metrics::new()),
            rules_dir,
            rules,
            finished: false,
        }
    }

    /// Breakers of this world, as worker `worker`.
    pub async fn breakers(&self, worker: &str) -> Breakers {
        let mut options = BreakerOptions::new(worker);
        options.tick_interval = Duration::from_millis(100);
        Breakers::open(
            &self.bus,
            self.store.clone(),
            Arc::clone(&self.rules),
            Arc::clone(&self.metrics),
            options,
        )
        .await
        .unwrap()
    }

    pub fn rules_path(&self) -> PathBuf {
        self.rules_dir.path().to_owned()
    }

    /// Rows of `vendor` in breaker_transitions as (from, to, actor, reason),
    /// the states by their names.
    pub async fn transitions(&self, vendor: &str) -> Vec<(String, String, String, String)> {
        let mut rows = self
            .store
            .breaker_transitions(Some(vendor), 1000)
            .await
            .unwrap();
        rows.reverse();
        rows.into_iter()
            .map(|r| {
                let (from, to) = (r.from_state.to_string(), r.to_state.to_string());
                (from, to, r.actor, r.reason)
            })
            .collect()
    }

    /// Drops the database and the buckets.
    pub async fn finish(mut self) {
        self.store.pool().close().await;
        teardown(self.bus.clone(), self.db.clone()).await;
        self.finished = true;
    }
}

impl Drop for World {
    /// A test that panicked before `finish` still leaves nothing behind:
    /// the teardown runs on a runtime of its own, since this one is unwinding.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (bus, db) = (self.bus.clone(), self.db.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(teardown(bus, db));
        })
        .join();
    }
}

async fn teardown(bus: Bus, db: String) {
    for b in [BREAKERS_BUCKET, RATELIMITS_BUCKET] {
        let _ = bus.delete_bucket(b).await;
    }
    let admin = PgConnectOptions::from_str(&database_url()).unwrap();
    let mut conn = admin.connect().await.unwrap();
    conn.execute(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .await
    .unwrap();
}

/// Copies the shipped error codes and retry policies, with `vendor_config`.
pub fn write_rules(dir: &Path, vendor_config: &str) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/rules");
    for f in ["error_codes.yaml", "retry_policies.yaml"] {
        std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("vendor_config.yaml"), vendor_config).unwrap();
}

/// Polls `f` until it yields `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
