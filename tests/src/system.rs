//! The system in-process: the real gateway and workers started
//! in harnesses of their own inside the test, and requests against them.

use std::time::Duration;

use awfdrs_bus::Namespace;
use awfdrs_runtime::{Context, Harness};
use awfdrs_store::Tenant;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{World, cleanup};

/// How far down the pipeline an in-process system runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stages {
    Detector,
    Analyzer,
    Coordinator,
    Scheduler,
    Notifier,
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
        Self::start_workers(extra, 1, Stages::Notifier).await
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
            if upto >= Stages::Notifier && i == 0 {
                awfdrs_notifier::start(&process).await.expect("notifier");
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
