//! A test's private world: its own migrated PostgreSQL database and NATS
//! namespace, the environment its processes read, and their removal.

use std::collections::BTreeMap;
use std::time::Duration;

use awfdrs_config::{Config, Env};
use awfdrs_runtime::Context;
use awfdrs_store::Store;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// `DATABASE_URL` of the server tests may create databases on.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/awfdrs".to_owned())
}

/// `NATS_URL` of a nats-server 2.10 or later.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4333".to_owned())
}

/// A fresh, migrated database, a fresh namespace, and a key of its own for
/// secrets at rest.
#[derive(Debug)]
pub struct World {
    pub namespace: String,
    pub database: String,
    pub database_url: String,
    /// `AWFDRS_SECRETS_KEY` of this world's processes (base64 of 32 bytes).
    pub secrets_key: String,
}

impl World {
    /// Creates the database on `DATABASE_URL`'s server and picks the
    /// namespace.
    pub async fn new() -> Self {
        Self::new_at(&database_url()).await
    }

    /// Creates a fresh, migrated database on the server at `admin_url`
    /// (a private cluster of a fault test) and picks the namespace.
    pub async fn new_at(admin_url: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let namespace = format!("t{}", &id[..12]);
        let database = format!("awfdrs_test_{}", &id[..16]);
        let admin: PgConnectOptions = admin_url.parse().expect("admin URL");
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
            secrets_key: new_secrets_key(),
        }
    }

    /// A store on this world's database with its key for secrets at rest.
    pub async fn store(&self, max_connections: u32) -> Store {
        let store = Store::connect(&self.database_url, max_connections, Duration::from_secs(10))
            .await
            .expect("connect test database");
        awfdrs_runtime::with_keys(store, &Config::load(None, &self.env(&[]), &[]).unwrap())
            .expect("the world's key")
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
        env.insert("AWFDRS_SECRETS_KEY".into(), self.secrets_key.clone());
        env.insert("AWFDRS__DATABASE__MAX_CONNECTIONS".into(), "8".into());
        env.insert("AWFDRS__CONSUMER__NAK_BASE_MS".into(), "50".into());
        env.insert("AWFDRS__CONSUMER__NAK_MAX_MS".into(), "500".into());
        env.insert("AWFDRS__OUTBOX__SWEEP_MS".into(), "100".into());
        // Callback receivers of the tests listen on loopback.
        env.insert(
            "AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS".into(),
            "true".into(),
        );
        // Grouping and per-channel rate limits are the notifier tests'
        // subject where they set them; elsewhere every escalation is its
        // own notification, sent as soon as it is due.
        env.insert("AWFDRS__NOTIFICATIONS__GROUP_WINDOW_MS".into(), "0".into());
        env.insert(
            "AWFDRS__NOTIFICATIONS__CHANNEL_RATE_PER_MINUTE".into(),
            "60000".into(),
        );
        env.insert(
            "AWFDRS__NOTIFICATIONS__CHANNEL_BURST".into(),
            "10000".into(),
        );
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

/// A new key for secrets at rest: base64 of 32 random bytes.
pub fn new_secrets_key() -> String {
    use base64::Engine as _;
    let mut bytes = uuid::Uuid::new_v4().into_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Deletes a world's streams and database.
pub async fn cleanup(ctx: &Context, world: &World) {
    let _ = ctx.bus.delete_streams().await;
    for bucket in [
        awfdrs_bus::names::BREAKERS_BUCKET,
        awfdrs_bus::names::RATELIMITS_BUCKET,
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
