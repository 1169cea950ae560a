//! The HTTP gateway: where webhook senders hand events to AWFDRS, and where
//! operators read incidents.
//!
//! Ingestion validates with the same rules as the detector, reserves the
//! idempotency key in PostgreSQL, publishes to JetStream with the event's
//! stable id as `Nats-Msg-Id`, and commits the key only after the broker's
//! ack, so an answer of 202 means the event is durable and a failure leaves
//! nothing half-accepted. It writes no events itself: the detector does.

mod auth;
mod ingest;
mod ops;
mod problem;
pub mod webhook;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use awfdrs_guard::{BreakerOptions, Breakers};
use awfdrs_runtime::Context;
use awfdrs_telemetry::HttpLabels;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use tracing::info;
use uuid::Uuid;

pub use problem::Problem;

/// Shared state of the gateway's handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ctx: Context,
    breakers: Breakers,
    limiter: DefaultKeyedRateLimiter<Uuid>,
    keys: auth::KeyCache,
}

impl AppState {
    /// The gateway's state over `ctx`, with the shared breakers' view.
    pub fn new(ctx: Context, breakers: Breakers) -> Self {
        let ingress = &ctx.config.ingress;
        let rate = NonZeroU32::new(ingress.per_tenant_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(ingress.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
                keys: auth::KeyCache::new(),
                breakers,
                ctx,
            }),
        }
    }

    fn ctx(&self) -> &Context {
        &self.inner.ctx
    }
}

/// The gateway's routes: ingestion, operations and health.
pub fn router(state: AppState) -> axum::Router {
    let http = &state.ctx().config.http;
    let single = http.body_limit_bytes;
    let batch = http.batch_body_limit_bytes;
    let ops = awfdrs_runtime::ops_router(state.ctx().clone());
    axum::Router::new()
        .route(
            "/api/v1/events",
            post(ingest::single).layer(DefaultBodyLimit::max(single)),
        )
        .route(
            "/api/v1/events/batch",
            post(ingest::batch).layer(DefaultBodyLimit::max(batch)),
        )
        .route("/api/v1/incidents", get(ops::list_incidents))
        .route("/api/v1/incidents/{id}", get(ops::get_incident))
        .route("/api/v1/breakers", get(ops::list_breakers))
        .route("/api/v1/breakers/{vendor}/reset", post(ops::reset_breaker))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
        .merge(ops)
}

/// Records each request's latency by route and status.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route: String = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = match route.as_str() {
        "/api/v1/events" => "/api/v1/events",
        "/api/v1/events/batch" => "/api/v1/events/batch",
        "/api/v1/incidents" => "/api/v1/incidents",
        "/api/v1/incidents/{id}" => "/api/v1/incidents/{id}",
        "/api/v1/breakers" => "/api/v1/breakers",
        "/api/v1/breakers/{vendor}/reset" => "/api/v1/breakers/{vendor}/reset",
        _ => "other",
    };
    state
        .ctx()
        .metrics
        .http_seconds
        .get_or_create(&HttpLabels {
            route,
            status: resp.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Serves the gateway until `shutdown`, then lets in-flight requests finish.
///
/// # Errors
/// When the address cannot be bound.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    let addr = ctx.config.http.socket_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    serve(listener, ctx, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0).
///
/// # Errors
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Context,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    info!(addr = %listener.local_addr()?, "gateway listening");
    let breakers = Breakers::open(
        &ctx.bus,
        ctx.store.clone(),
        ctx.rules.clone(),
        ctx.metrics.clone(),
        BreakerOptions::new(format!("gateway-{}", std::process::id())),
    )
    .await?;
    let watch = breakers.spawn(shutdown.clone());
    let app = router(AppState::new(ctx, breakers));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    let _ = watch.await;
    info!("gateway stopped");
    Ok(())
}
