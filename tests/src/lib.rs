//! The test harness: a private world per test — its own PostgreSQL
//! database and NATS namespace — with the real gateway and detector running
//! in-process, or the real `awfdrs` binary as a child process for fault
//! tests. Tests run in parallel without seeing each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use awfdrs_bus::Namespace;
use awfdrs_config::{Config, Env};
use awfdrs_runtime::Context;
use awfdrs_store::{Store, Tenant};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `DATABASE_URL` of the server tests may create databases on.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/awfdrs".to_owned())
}

/// `NATS_URL` of a nats-server 2.10 or later.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4333".to_owned())
}

/// A fresh, migrated database and a fresh namespace.
#[derive(Debug)]
pub struct World {
    pub namespace: String,
    pub database: String,
    pub database_url: String,
}

impl World {
    /// Creates the database and picks the namespace.
    pub async fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let namespace = format!("t{}", &id[..12]);
        let database = format!("awfdrs_test_{}", &id[..16]);
        let admin: PgConnectOptions = database_url().parse().expect("DATABASE_URL");
        let mut conn = admin
            .clone()
            .database("postgres")
            .connect()
            .await
            .expect("connect to PostgreSQL (is DATABASE_URL right?)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let database_url = admin.database(&database).to_url_lossy().to_string();
        let store = Store::connect(&database_url, 2, Duration::from_secs(10))
            .await
            .expect("connect test database");
        store.migrate().await.expect("migrate");
        store.pool().close().await;
        Self {
            namespace,
            database,
            database_url,
        }
    }

    /// The environment a process of this world reads its configuration from.
    pub fn env(&self, extra: &[(&str, &str)]) -> Env {
        let mut env: Env = BTreeMap::new();
        env.insert("DATABASE_URL".into(), self.database_url.clone());
        env.insert("NATS_URL".into(), nats_url());
        env.insert("AWFDRS_NAMESPACE".into(), self.namespace.clone());
        env.insert("AWFDRS_HTTP_ADDR".into(), "127.0.0.1:0".into());
        env.insert(
            "AWFDRS__TELEMETRY__METRICS_ADDR".into(),
            "127.0.0.1:0".into(),
        );
        env.insert("AWFDRS__DATABASE__MAX_CONNECTIONS".into(), "8".into());
        env.insert("AWFDRS__CONSUMER__NAK_BASE_MS".into(), "50".into());
        env.insert("AWFDRS__CONSUMER__NAK_MAX_MS".into(), "500".into());
        env.insert("AWFDRS__DETECTOR__OUTBOX_SWEEP_MS".into(), "100".into());
        env.insert(
            "AWFDRS__RULES__DIR".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rules").into(),
        );
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        env
    }

    /// A connected context of this world, topology declared.
    pub async fn context(&self, extra: &[(&str, &str)]) -> Context {
        let config = Config::load(None, &self.env(extra), &[]).expect("test config");
        let ctx = Context::connect(config).await.expect("connect");
        ctx.prepare().await.expect("prepare");
        ctx
    }
}

/// A running system: gateway and detector in-process.
#[derive(Debug)]
pub struct System {
    pub world: World,
    pub ctx: Context,
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl System {
    /// Starts the gateway and one detector.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        Self::start_with(extra, 1).await
    }

    /// Starts the gateway and `detectors` competing detectors, each with
    /// its own connections.
    pub async fn start_with(extra: &[(&str, &str)], detectors: usize) -> Self {
        let world = World::new().await;
        let ctx = world.context(extra).await;
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut tasks = vec![tokio::spawn(awfdrs_gateway::serve(
            listener,
            ctx.clone(),
            shutdown.clone(),
        ))];
        for i in 0..detectors {
            let dctx = if i == 0 {
                ctx.clone()
            } else {
                world.context(extra).await
            };
            tasks.push(tokio::spawn(awfdrs_detector::run(dctx, shutdown.clone())));
        }
        Self {
            world,
            ctx,
            base,
            http: reqwest::Client::new(),
            shutdown,
            tasks,
        }
    }

    /// A new tenant and its API key.
    pub async fn tenant(&self, slug: &str) -> (Tenant, String) {
        let key = awfdrs_domain::new_api_key();
        let t = self.ctx.store.create_tenant(slug, &key).await.unwrap();
        (t, key)
    }

    /// POSTs `body` (raw) to `path` with `key`.
    pub async fn post_raw(&self, path: &str, key: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs JSON to `path` with `key`.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, Some(key), serde_json::to_vec(body).unwrap())
            .await
    }

    /// GETs `path` with `key`.
    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The namespace's subjects.
    pub fn ns(&self) -> &Namespace {
        self.ctx.bus.ns()
    }

    /// Number of rows of `table` for `tenant`.
    pub async fn rows(&self, table: &str, tenant: uuid::Uuid) -> i64 {
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(self.ctx.store.pool())
            .await
            .unwrap()
    }

    /// Stops everything and drops the world's database and streams.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        cleanup(&self.ctx, &self.world).await;
    }
}

/// Deletes a world's streams and database.
pub async fn cleanup(ctx: &Context, world: &World) {
    let _ = ctx.bus.delete_streams().await;
    for bucket in [
        awfdrs_guard::names::BREAKERS_BUCKET,
        awfdrs_guard::names::RATELIMITS_BUCKET,
    ] {
        let _ = ctx.bus.delete_bucket(bucket).await;
    }
    ctx.store.pool().close().await;
    let admin: PgConnectOptions = database_url().parse().unwrap();
    if let Ok(mut conn) = admin.database("postgres").connect().await {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", world.database);
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
}

/// Waits until `check` returns Some, polling, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A failure event.
pub fn failure(key: &str, workflow: &str, code: &str) -> Value {
    json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": "step_failed",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "step": "charge",
        "vendor": "stripe",
        "error": {"code": code, "message": "timed out", "http_status": 504}
    })
}

/// A success event.
pub fn success(key: &str, workflow: &str) -> Value {
    json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": "step_succeeded",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "step": "charge",
        "vendor": "stripe"
    })
}

/// The built `awfdrs` binary (`AWFDRS_BIN`, else next to the test binary).
pub fn awfdrs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AWFDRS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("awfdrs");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bin awfdrs) or set AWFDRS_BIN",
        bin.display()
    );
    bin
}

/// The recorded dead letter `id` (its full payload included).
pub async fn dead_letter_row(ctx: &Context, id: i64) -> awfdrs_store::DeadLetterRecord {
    ctx.store
        .dead_letter(id)
        .await
        .unwrap_or_else(|e| panic!("dead letter {id}: {e}"))
}
