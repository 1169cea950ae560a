//! The operations endpoints: `/metrics`, `/api/v1/health` and
//! `/api/v1/ready`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use awfdrs_store::Store;
use awfdrs_telemetry::TaskState;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Context;

/// Binds the operations endpoint's address.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind_ops(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics address {addr}"))?;
    info!(addr = %listener.local_addr()?, "serving metrics and health");
    Ok(listener)
}

/// Serves `GET /metrics`, `GET /api/v1/health` and `GET /api/v1/ready` on
/// `listener` until `shutdown`: the operations endpoints of a worker that
/// has no HTTP server of its own.
///
/// # Errors
/// When serving fails.
pub async fn serve_ops(
    listener: tokio::net::TcpListener,
    ctx: Context,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = ops_router(ctx);
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

/// 200 when PostgreSQL and NATS both answer and every task of the process
/// works; 503 naming what does not and why. The checks run concurrently,
/// each within [`READY_CHECK_TIMEOUT`]; `tasks` lists the process's tasks
/// (consumer loops, the HTTP server) with `ok` or the reason they cannot
/// work.
async fn readiness(ctx: &Context) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    let (db, nats) = tokio::join!(check_store(&ctx.store), async {
        ctx.bus
            .check(READY_CHECK_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    });
    let mut tasks_ok = true;
    let tasks: serde_json::Map<String, serde_json::Value> = ctx
        .health
        .snapshot()
        .into_iter()
        .map(|(name, state)| {
            let said = match state {
                TaskState::Ok => "ok".to_owned(),
                TaskState::Degraded(reason) => {
                    tasks_ok = false;
                    format!("degraded: {reason}")
                }
                TaskState::Failed(reason) => {
                    tasks_ok = false;
                    format!("failed: {reason}")
                }
            };
            (name, serde_json::Value::String(said))
        })
        .collect();
    let ok = db.is_ok() && nats.is_ok() && tasks_ok;
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
        },
        "tasks": tasks,
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
