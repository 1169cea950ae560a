//! The test harness: a private world per test — its own PostgreSQL
//! database and NATS namespace — with the real gateway and detector running
//! in-process, or the real `awfdrs` binary as a child process for fault
//! tests. Tests run in parallel without seeing each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use awfdrs_bus::{Namespace, Topic};
use awfdrs_config::{Config, Env};
use awfdrs_runtime::{Context, Harness};
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
    /// Creates the database on `DATABASE_URL`'s server and picks the
    /// namespace.
    pub async fn new() -> Self {
        Self::new_at(&database_url()).await
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
        env.insert("AWFDRS__OUTBOX__SWEEP_MS".into(), "100".into());
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

/// How far down the pipeline an in-process system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stages {
    Detector,
    Analyzer,
    Coordinator,
    Scheduler,
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
        Self::start_workers(extra, detectors, Stages::Detector).await
    }

    /// Starts the gateway, a detector and an analyzer in one process, as
    /// `awfdrs up` does.
    pub async fn start_analyzed(extra: &[(&str, &str)]) -> Self {
        Self::start_workers(extra, 1, Stages::Analyzer).await
    }

    /// Starts the gateway, a detector, an analyzer and a coordinator in one
    /// process.
    pub async fn start_coordinated(extra: &[(&str, &str)]) -> Self {
        Self::start_workers(extra, 1, Stages::Coordinator).await
    }

    /// Starts every worker in one process, as `awfdrs up` does.
    pub async fn start_all(extra: &[(&str, &str)]) -> Self {
        Self::start_workers(extra, 1, Stages::Scheduler).await
    }

    async fn start_workers(extra: &[(&str, &str)], detectors: usize, upto: Stages) -> Self {
        let world = World::new().await;
        let ctx = world.context(extra).await;
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The first process runs the gateway and a detector; each further
        // detector is a process of its own, with its own connections.
        let first = Harness::start(ctx.clone(), shutdown.clone()).expect("harness");
        let addr = awfdrs_gateway::start_on(&first, listener).expect("gateway");
        let base = format!("http://{addr}");
        let mut processes = vec![first];
        for _ in 1..detectors {
            let more = Harness::start(world.context(extra).await, shutdown.clone());
            processes.push(more.expect("harness"));
        }
        let mut tasks = Vec::new();
        for (i, process) in processes.into_iter().enumerate() {
            if detectors > 0 {
                awfdrs_detector::start(&process).await.expect("detector");
            }
            if upto >= Stages::Analyzer && i == 0 {
                awfdrs_analyzer::start(&process).await.expect("analyzer");
            }
            if upto >= Stages::Coordinator && i == 0 {
                awfdrs_coordinator::start(&process)
                    .await
                    .expect("coordinator");
            }
            if upto >= Stages::Scheduler && i == 0 {
                awfdrs_scheduler::start(&process).await.expect("scheduler");
            }
            tasks.push(tokio::spawn(process.run()));
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

    /// The gateway's address, for raw TCP clients.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("gateway address")
    }

    /// A raw TCP connection to the gateway that has sent `head` (and
    /// nothing more).
    pub async fn raw(&self, head: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let mut s = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s
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

/// Runs a detector over `ctx` as its own process would: in a harness of
/// its own, until `shutdown`. The handle ends with the harness's result.
pub async fn run_detector(
    ctx: Context,
    shutdown: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let harness = Harness::start(ctx, shutdown).expect("harness");
    awfdrs_detector::start(&harness).await.expect("detector");
    tokio::spawn(harness.run())
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

pub mod private;

impl World {
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
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for a child to take).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// `awfdrs up` run as the real binary: gateway and workers in one child
/// process, its output appended to a log file that survives restarts.
#[derive(Debug)]
pub struct Up {
    child: tokio::process::Child,
    env: Env,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    /// Where stdout and stderr of every run go.
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Up {
    /// Spawns `awfdrs up` with `env` (a world's, see [`World::env`]) on a
    /// free port; does not wait for it to be ready.
    pub fn spawn(mut env: Env, log: PathBuf) -> Self {
        let port = free_port();
        env.insert("AWFDRS_HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
        let child = Self::start(&env, &log);
        Self {
            child,
            env,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        }
    }

    fn start(env: &Env, log: &PathBuf) -> tokio::process::Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        let err = out.try_clone().unwrap();
        tokio::process::Command::new(awfdrs_bin())
            .arg("up")
            .env_clear()
            .envs(env)
            .env(
                "RUST_LOG",
                std::env::var("AWFDRS_TEST_LOG").unwrap_or("info".into()),
            )
            .env("NO_COLOR", "1")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn awfdrs up")
    }

    /// The child's process id, None once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running (it did not exit or crash).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, if it did.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The status of `GET /api/v1/ready`, None without an answer within 3 s.
    pub async fn ready_status(&self) -> Option<u16> {
        self.ready().await.map(|(s, _)| s)
    }

    /// The status and body of `GET /api/v1/ready`, None without an answer
    /// within 3 s.
    pub async fn ready(&self) -> Option<(u16, String)> {
        let r = self
            .http
            .get(format!("{}/api/v1/ready", self.base))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.unwrap_or_default()))
    }

    /// Waits until `/ready` answers 200, failing after `within` or when the
    /// process exits.
    pub async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit_status() {
                panic!(
                    "awfdrs up exited ({status}) before it was ready; log: {}",
                    self.log.display()
                );
            }
            if self.ready_status().await == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "awfdrs up not ready within {within:?}; log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/ready` answers 200: true, or false when `within`
    /// passes or the process exits first.
    pub async fn try_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.exit_status().is_some() {
                return false;
            }
            if self.ready_status().await == Some(200) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs the process and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts the process again (same port, same environment) after a kill
    /// or a crash.
    pub fn restart(&mut self) {
        self.child = Self::start(&self.env, &self.log);
    }
}

/// One HTTP answer about one event: what was sent and what came back.
#[derive(Debug, Clone)]
pub struct HttpRecord {
    pub tenant: uuid::Uuid,
    pub key: String,
    pub body: Value,
    /// The status, 0 when no answer came (connection lost, timeout).
    pub status: u16,
}

/// One message published straight to NATS.
#[derive(Debug, Clone)]
pub struct NatsRecord {
    pub tenant: uuid::Uuid,
    pub key: String,
    pub payload: bytes::Bytes,
    /// The events stream's sequence from the broker's ack; None when no ack
    /// came (the message may or may not have been stored).
    pub sequence: Option<u64>,
}

/// Everything sent, for the reconciliation at the end of a test.
#[derive(Debug, Default)]
pub struct Ledger {
    pub http: std::sync::Mutex<Vec<HttpRecord>>,
    pub nats: std::sync::Mutex<Vec<NatsRecord>>,
}

impl Ledger {
    /// Records an HTTP answer.
    pub fn http(&self, tenant: uuid::Uuid, key: &str, body: &Value, status: u16) {
        self.http.lock().unwrap().push(HttpRecord {
            tenant,
            key: key.to_owned(),
            body: body.clone(),
            status,
        });
    }

    /// Records a NATS publish.
    pub fn nats(
        &self,
        tenant: uuid::Uuid,
        key: &str,
        payload: bytes::Bytes,
        sequence: Option<u64>,
    ) {
        self.nats.lock().unwrap().push(NatsRecord {
            tenant,
            key: key.to_owned(),
            payload,
            sequence,
        });
    }
}

/// A dead letter, from the `dead_letters` table when it exists, else from
/// the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Sequence of the original in the events stream.
    pub sequence: Option<u64>,
    pub reason: String,
    pub payload: Option<Vec<u8>>,
}

/// Whether the database has the durable dead-letter table.
pub async fn has_dead_letter_table(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('dead_letters') IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

/// Every dead letter of namespace `ns`: the table's rows when the table
/// exists, else the messages of the dead-letter stream.
pub async fn dead_letters(
    pool: &sqlx::PgPool,
    js: &async_nats::jetstream::Context,
    ns: &str,
) -> Vec<DeadLetter> {
    if has_dead_letter_table(pool).await {
        type Row = (Option<i64>, Option<String>, Option<Vec<u8>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT stream_sequence::bigint, reason::text, payload FROM dead_letters",
        )
        .fetch_all(pool)
        .await
        .expect("read dead_letters");
        return rows
            .into_iter()
            .map(|(s, r, p)| DeadLetter {
                sequence: s.and_then(|s| u64::try_from(s).ok()),
                reason: r.unwrap_or_default(),
                payload: p,
            })
            .collect();
    }
    let name = Namespace::new(ns).expect("namespace").stream(Topic::Dlq);
    let Ok(mut stream) = js.get_stream(&name).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let (first, last, count) = (
        info.state.first_sequence,
        info.state.last_sequence,
        info.state.messages,
    );
    let mut out = Vec::new();
    for seq in first..=last {
        if count == 0 {
            break;
        }
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
        out.push(DeadLetter {
            sequence: h(awfdrs_bus::headers::DLQ_SEQUENCE).and_then(|s| s.parse().ok()),
            reason: h(awfdrs_bus::headers::DLQ_REASON).unwrap_or_default(),
            payload: Some(m.payload.to_vec()),
        });
    }
    out
}

/// The dead letter of the message stored at `sequence`, or one holding
/// exactly `payload`.
pub fn dead_letter_of<'a>(
    dead: &'a [DeadLetter],
    sequence: Option<u64>,
    payload: &[u8],
) -> Option<&'a DeadLetter> {
    dead.iter()
        .find(|d| sequence.is_some() && d.sequence == sequence)
        .or_else(|| dead.iter().find(|d| d.payload.as_deref() == Some(payload)))
}

/// The body hash the system stores for `body` (canonical JSON, SHA-256).
pub fn body_hash(body: &Value) -> Vec<u8> {
    awfdrs_domain::BodyHash::of(body).0.to_vec()
}

/// Compares everything sent against the database and the dead letters;
/// one line per discrepancy, empty when every answer told the truth:
///
/// * every `202`/`200` has its events row, holding the body that got it;
/// * a `409` has an events row holding another body;
/// * a key that was never accepted (every answer a rejection, nothing
///   published to NATS) left no events row and no `ingest_keys` row;
/// * every `ingest_keys` row has its events row (no key half-reserved);
/// * every events row is explained by an accepted answer or a NATS publish;
/// * every acked NATS message is stored with its body, or dead-lettered.
pub async fn reconcile(pool: &sqlx::PgPool, dead: &[DeadLetter], ledger: &Ledger) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let events: Vec<(uuid::Uuid, String, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, idempotency_key, body_hash FROM events")
            .fetch_all(pool)
            .await
            .expect("read events");
    let keys: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT tenant_id, idempotency_key FROM ingest_keys")
            .fetch_all(pool)
            .await
            .expect("read ingest_keys");
    let stored: HashMap<(uuid::Uuid, String), Vec<u8>> =
        events.into_iter().map(|(t, k, h)| ((t, k), h)).collect();
    let reserved: HashSet<(uuid::Uuid, String)> = keys.into_iter().collect();
    let http = ledger.http.lock().unwrap().clone();
    let nats = ledger.nats.lock().unwrap().clone();
    let mut explained: HashSet<(uuid::Uuid, String)> = HashSet::new();
    for r in &http {
        if matches!(r.status, 0 | 200 | 202 | 409) {
            explained.insert((r.tenant, r.key.clone()));
        }
    }
    for n in &nats {
        explained.insert((n.tenant, n.key.clone()));
    }
    let accepted: HashSet<(uuid::Uuid, String, Vec<u8>)> = http
        .iter()
        .filter(|r| matches!(r.status, 200 | 202))
        .map(|r| (r.tenant, r.key.clone(), body_hash(&r.body)))
        .collect();
    let mut problems = Vec::new();
    for r in &http {
        let id = (r.tenant, r.key.clone());
        let row = stored.get(&id);
        let hash = body_hash(&r.body);
        match r.status {
            0 => {}
            200 | 202 => match row {
                None => problems.push(format!(
                    "{} for key {:?} but no events row",
                    r.status, r.key
                )),
                Some(h) if *h != hash => problems.push(format!(
                    "{} for key {:?} but the events row holds another body",
                    r.status, r.key
                )),
                Some(_) => {}
            },
            409 => match row {
                Some(h) if *h == hash => problems.push(format!(
                    "409 for key {:?} yet the events row holds that very body",
                    r.key
                )),
                None => problems.push(format!(
                    "409 for key {:?} but no body is stored under it",
                    r.key
                )),
                Some(_) => {}
            },
            s => {
                if row == Some(&hash)
                    && !accepted.contains(&(r.tenant, r.key.clone(), hash.clone()))
                {
                    problems.push(format!("{s} for key {:?} yet its body was stored", r.key));
                }
                if !explained.contains(&id) {
                    if row.is_some() && row != Some(&hash) {
                        problems.push(format!("{s} for key {:?} left an events row", r.key));
                    }
                    if reserved.contains(&id) {
                        problems.push(format!("{s} for key {:?} left an ingest_keys row", r.key));
                    }
                }
            }
        }
    }
    for id in &reserved {
        if !stored.contains_key(id) {
            problems.push(format!(
                "key {:?} is reserved in ingest_keys but no event is stored under it",
                id.1
            ));
        }
    }
    for id in stored.keys() {
        if !explained.contains(id) {
            problems.push(format!(
                "events row for key {:?} that no accepted answer or publish explains",
                id.1
            ));
        }
    }
    for n in &nats {
        let Some(seq) = n.sequence else { continue };
        let hash = serde_json::from_slice::<Value>(&n.payload)
            .ok()
            .map(|v| body_hash(&v));
        let is_stored = hash.is_some() && stored.get(&(n.tenant, n.key.clone())) == hash.as_ref();
        if !is_stored && dead_letter_of(dead, Some(seq), &n.payload).is_none() {
            problems.push(format!(
                "NATS message at sequence {seq} (key {:?}) is neither stored nor dead-lettered",
                n.key
            ));
        }
    }
    problems
}

/// Waits until [`reconcile`] finds nothing, or `within` passes; returns
/// the last discrepancies (empty on success).
pub async fn reconcile_within(
    within: Duration,
    pool: &sqlx::PgPool,
    js: &async_nats::jetstream::Context,
    ns: &str,
    ledger: &Ledger,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let dead = dead_letters(pool, js, ns).await;
        let problems = reconcile(pool, &dead, ledger).await;
        if problems.is_empty() || Instant::now() >= deadline {
            return problems;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The real `awfdrs up` (or `worker gateway`) as a child process in a
/// world, listening on a free port, its output in a log file shown when
/// something goes wrong.
#[derive(Debug)]
pub struct Served {
    pub child: tokio::process::Child,
    /// `host:port` of the gateway.
    pub addr: String,
    /// `http://host:port`.
    pub base: String,
    /// Where the process's output goes.
    pub log: PathBuf,
}

impl Served {
    /// Spawns `awfdrs up` with `world`'s environment plus `extra`, and waits
    /// until `GET /api/v1/ready` answers 200.
    pub async fn start(world: &World, extra: &[(&str, &str)]) -> Self {
        Self::start_args(world, extra, &["up"]).await
    }

    /// Spawns `awfdrs ARGS` (a process that serves HTTP: `up`, `worker
    /// gateway`) like [`Served::start`].
    pub async fn start_args(world: &World, extra: &[(&str, &str)], args: &[&str]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("awfdrs-{}-{port}.log", world.namespace));
        let out = std::fs::File::create(&log).expect("create the log file");
        let err = out.try_clone().unwrap();
        let child = tokio::process::Command::new(awfdrs_bin())
            .args(args)
            .env_clear()
            .envs(world.env(extra))
            .env("AWFDRS_HTTP_ADDR", &addr)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn awfdrs");
        let mut up = Self {
            child,
            base: format!("http://{addr}"),
            addr,
            log,
        };
        up.wait_ready(Duration::from_secs(60)).await;
        up
    }

    /// The last 80 lines of the process's output so far.
    pub fn output(&self) -> String {
        let all = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    async fn wait_ready(&mut self, within: Duration) {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/ready", self.base);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("awfdrs exited ({status}) before ready:\n{}", self.output());
            }
            let ok = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "awfdrs not ready within {within:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process and removes its log.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One HTTP/1.1 answer read off a raw connection: status, head, body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Reads one answer from `stream` (waiting at most `within`); None when the
/// connection closes first or nothing complete arrives in time.
pub async fn read_answer(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<RawAnswer> {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Some(RawAnswer { status, head, body });
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Whether the server closes `stream` within `within` (whatever it sends
/// before closing is discarded).
pub async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// The recorded dead letter `id` (its full payload included).
pub async fn dead_letter_row(ctx: &Context, id: i64) -> awfdrs_store::DeadLetterRecord {
    ctx.store
        .dead_letter(id)
        .await
        .unwrap_or_else(|e| panic!("dead letter {id}: {e}"))
}
