//! The composition root of every AWFDRS process: [`Context::connect`]
//! builds the connections and registries once from the configuration and
//! hands them to the workers' `run(ctx, shutdown)`; [`shutdown_token`] turns
//! SIGTERM and SIGINT into a cancellation; [`serve_metrics`] exposes
//! `GET /metrics` for a worker that has no HTTP server of its own;
//! [`StoreDeadLetters`] records the consumer loop's dead letters in
//! PostgreSQL.
//!
//! Nothing here decides anything: it wires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use awfdrs_bus::{Bus, DeadLetter, DeadLetterSink, Namespace, topology::ConsumerSettings};
use awfdrs_config::Config;
use awfdrs_rules::RulesHandle;
use awfdrs_store::Store;
use awfdrs_telemetry::Metrics;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What every worker is given: configuration, connections and metrics.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    /// The rules, swapped whole on reload.
    pub rules: Arc<RulesHandle>,
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
        Ok(Self {
            config: Arc::new(config),
            store,
            bus,
            metrics: Arc::new(Metrics::new()),
            rules: Arc::new(rules),
        })
    }

    /// Applies migrations and declares the streams: what `awfdrs migrate`
    /// and `awfdrs up` do before the workers start. Idempotent.
    ///
    /// # Errors
    /// When either fails.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        self.store.migrate().await.context("applying migrations")?;
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

/// A token cancelled by the first SIGTERM or SIGINT. A second signal exits
/// the process at once.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested; draining in-flight work");
        t.cancel();
        wait_for_signal().await;
        warn!("second signal; exiting now");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `GET /metrics`, `GET /api/v1/health` and `GET /api/v1/ready` on
/// `addr` until `shutdown`: the operations endpoints of a worker that has no
/// HTTP server of its own.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve_ops(
    addr: SocketAddr,
    ctx: Context,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = ops_router(ctx);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics address {addr}"))?;
    info!(%addr, "serving metrics and health");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The operations routes (`/metrics`, `/api/v1/health`, `/api/v1/ready`).
pub fn ops_router<S: Clone + Send + Sync + 'static>(ctx: Context) -> axum::Router<S> {
    let metrics = ctx.metrics.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/api/v1/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/api/v1/ready",
            get(move || {
                let ctx = ctx.clone();
                async move { readiness(&ctx).await }
            }),
        )
}

/// How long each readiness check may take.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// 200 when PostgreSQL and NATS both answer, 503 naming what does not and
/// why. The checks run concurrently, each within [`READY_CHECK_TIMEOUT`].
async fn readiness(ctx: &Context) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    let (db, nats) = tokio::join!(check_store(&ctx.store), async {
        ctx.bus
            .check(READY_CHECK_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    });
    let ok = db.is_ok() && nats.is_ok();
    for (what, r) in [("postgres", &db), ("nats", &nats)] {
        if let Err(e) = r {
            warn!(check = what, cause = %e, "not ready");
        }
    }
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "postgres": db.err().unwrap_or_else(|| "ok".into()),
            "nats": nats.err().unwrap_or_else(|| "ok".into()),
        }
    });
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// A round trip to PostgreSQL within [`READY_CHECK_TIMEOUT`], or why not.
///
/// # Errors
/// The store's error text, or that no answer came in time.
pub async fn check_store(store: &Store) -> Result<(), String> {
    // The pool keeps retrying a server that refuses connections until its
    // acquire timeout; half the time for the pool, then a connection of its
    // own tells why.
    let half = READY_CHECK_TIMEOUT / 2;
    match tokio::time::timeout(half, store.ping()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => {}
    }
    match tokio::time::timeout(half, store.probe()).await {
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(())) => Err(format!(
            "database busy: the pool gave no connection within {half:?} (timed out), though the server answers"
        )),
        Err(_) => Err(format!(
            "database unavailable: timed out after {READY_CHECK_TIMEOUT:?} (no answer from the pool nor to a new connection)"
        )),
    }
}

/// Records dead letters in PostgreSQL's `dead_letters` table.
#[derive(Debug, Clone)]
pub struct StoreDeadLetters {
    store: Store,
}

impl StoreDeadLetters {
    /// A sink over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl DeadLetterSink for StoreDeadLetters {
    async fn record(&self, letter: &DeadLetter) -> Result<i64, String> {
        let headers: serde_json::Map<String, serde_json::Value> = letter
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let stage = letter.stage.to_string();
        self.store
            .record_dead_letter(&awfdrs_store::NewDeadLetter {
                stage: &stage,
                subject: &letter.subject,
                stream_sequence: i64::try_from(letter.stream_sequence).unwrap_or(i64::MAX),
                delivered: letter.delivered,
                consumer: &letter.consumer,
                reason: &letter.reason,
                headers: serde_json::Value::Object(headers),
                payload: &letter.payload,
            })
            .await
            .map_err(|e| e.to_string())
    }
}

/// Runs `f`, containing a panic: `Err` holds the panic's message. For
/// background work that must outlive a bug in one round (the outbox relay).
///
/// # Errors
/// When `f` panicked.
pub async fn contain<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|panic| {
            if let Some(s) = panic.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = panic.downcast_ref::<String>() {
                s.clone()
            } else {
                "a panic without a message".to_owned()
            }
        })
}

/// Runs `work` until it ends, or until `grace` after `shutdown` fired.
///
/// # Errors
/// When the work fails, or does not finish within the grace period.
pub async fn drain<F>(work: F, shutdown: CancellationToken, grace: Duration) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(work);
    tokio::select! {
        r = &mut work => r,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            anyhow::bail!("in-flight work did not finish within the {grace:?} grace period")
        }
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

    #[tokio::test]
    async fn a_panic_is_contained_with_its_message() {
        assert_eq!(contain(async { 7 }).await, Ok(7));
        let r: Result<(), String> = contain(async { panic!("boom {}", 1) }).await;
        assert_eq!(r, Err("boom 1".to_owned()));
    }

    #[test]
    fn old_servers_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("2.10.23").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
    }
}
