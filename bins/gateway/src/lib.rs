//! The HTTP gateway: where webhook senders hand events to AWFDRS, and where
//! operators read incidents.
//!
//! Ingestion validates with the same rules as the detector, reserves the
//! idempotency key in PostgreSQL, publishes to JetStream with the event's
//! stable id as `Nats-Msg-Id`, and commits the key only after the broker's
//! ack, so an answer of 202 means the event is durable and a failure leaves
//! nothing half-accepted. It writes no events itself: the detector does.
//!
//! It serves HTTP/1.1 on its own [`server`] loop, which bounds connections,
//! requests in flight and the time a client may take over its headers or
//! sit idle; every error answer is an RFC 9457 problem.

mod auth;
mod callbacks;
mod channels;
mod ingest;
mod openapi;
mod ops;
mod problem;
mod remedy;
mod server;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use awfdrs_runtime::{Context, Harness};
use awfdrs_telemetry::HttpLabels;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tracing::{error, info};
use uuid::Uuid;

pub use openapi::document as openapi_document;
pub use problem::Problem;

/// Shared state of the gateway's handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ctx: Context,
    limiter: DefaultKeyedRateLimiter<Uuid>,
    keys: auth::KeyCache,
    /// Slots for reading the body of a request not yet authenticated.
    unauthenticated: Semaphore,
    /// Bytes of request bodies buffered at once, in [`auth::BUDGET_UNIT`]s.
    body_budget: Arc<Semaphore>,
    /// Group commit of single-event requests, unless it is off.
    group: Option<ingest::Coalescer>,
}

impl AppState {
    /// The gateway's state over `ctx`, with group commit of single-event
    /// requests when it is on.
    fn new(ctx: Context, group: Option<ingest::Coalescer>) -> Self {
        let ingress = &ctx.config.ingress;
        let rate = NonZeroU32::new(ingress.per_tenant_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(ingress.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
                keys: auth::KeyCache::new(),
                unauthenticated: Semaphore::new(ctx.config.http.max_unauthenticated_bodies),
                body_budget: Arc::new(Semaphore::new(
                    ctx.config
                        .http
                        .max_buffered_body_bytes
                        .div_ceil(auth::BUDGET_UNIT)
                        .min(Semaphore::MAX_PERMITS),
                )),
                group,
                ctx,
            }),
        }
    }

    fn ctx(&self) -> &Context {
        &self.inner.ctx
    }
}

/// The gateway's own routes, each documented by its handler's
/// `#[utoipa::path]`, with the document they make.
fn api() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ingest::single))
        .routes(routes!(ingest::batch))
        .routes(routes!(ops::list_incidents))
        .routes(routes!(ops::get_incident))
        .routes(routes!(ops::resolve_incident))
        .routes(routes!(ops::acknowledge_incident))
        .routes(routes!(remedy::list_actions))
        .routes(routes!(remedy::cancel_action))
        .routes(routes!(remedy::approve_action))
        .routes(routes!(remedy::get_mode, remedy::put_mode))
        .routes(routes!(callbacks::put_callback, callbacks::delete_callback))
        .routes(routes!(channels::add_channel, channels::list_channels))
        .routes(routes!(channels::remove_channel))
        .routes(routes!(ops::list_breakers))
        .routes(routes!(ops::reset_breaker))
        .routes(routes!(openapi::serve))
}

/// The gateway's routes: ingestion, operations, health and the API's
/// OpenAPI document.
///
/// Ingestion handlers read their bodies themselves, after authentication,
/// with the route's limit; nothing here buffers a body.
pub fn router(state: AppState) -> axum::Router {
    let ops = awfdrs_runtime::ops_router(state.ctx().clone());
    let (api, _) = api().split_for_parts();
    api.merge(ops)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(state.clone(), head_limits))
        .with_state(state)
}

/// A handler that panicked answers 500 (and is logged with the panic's
/// message, escaped) instead of dropping the connection.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    Problem::internal("the request could not be handled")
        .caused_by(&format_args!("handler panicked: {message:?}"))
        .into_response()
}

async fn not_found() -> Response {
    Problem::not_found("no such resource").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::method_not_allowed().into_response()
}

/// 414 and 431 as problems, for heads hyper parsed but that exceed the
/// configured limits.
async fn head_limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let http = &state.ctx().config.http;
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > http.max_uri_bytes {
        return Problem::uri_too_long(http.max_uri_bytes)
            .closing()
            .into_response();
    }
    // As on the wire: name, ": ", value, CRLF.
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers > http.max_header_bytes {
        return Problem::headers_too_large(http.max_header_bytes)
            .closing()
            .into_response();
    }
    // The connection refuses more before hyper parses them; kept so the
    // router holds the limit on its own too.
    if req.headers().len() > server::MAX_HEADERS {
        return Problem::too_many_headers(server::MAX_HEADERS)
            .closing()
            .into_response();
    }
    next.run(req).await
}

/// Makes an error answer that is not a problem (an extractor's plain-text
/// rejection, say) into one with the same status.
fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // JSON error bodies (the readiness report) keep their shape.
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_json {
        return resp;
    }
    let title = status.canonical_reason().unwrap_or("Error");
    let kind = title.to_ascii_lowercase().replace(' ', "-");
    let mut problem = Problem::new(status, &kind, "Error", title.to_owned());
    if status == StatusCode::NOT_FOUND {
        problem = Problem::not_found("no such resource");
    }
    let mut out = problem.into_response();
    out.headers_mut().extend(
        resp.headers()
            .iter()
            .filter(|(k, _)| *k == header::RETRY_AFTER || *k == header::CONNECTION)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

/// Records each request's latency by route and status.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route: String = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let method = req.method().clone();
    let resp = as_problem(next.run(req).await);
    let route = match route.as_str() {
        "/api/v1/events" => "/api/v1/events",
        "/api/v1/events/batch" => "/api/v1/events/batch",
        "/api/v1/incidents" => "/api/v1/incidents",
        "/api/v1/incidents/{id}" => "/api/v1/incidents/{id}",
        "/api/v1/incidents/{id}/resolve" => "/api/v1/incidents/{id}/resolve",
        "/api/v1/incidents/{id}/acknowledge" => "/api/v1/incidents/{id}/acknowledge",
        "/api/v1/actions" => "/api/v1/actions",
        "/api/v1/actions/{id}/cancel" => "/api/v1/actions/{id}/cancel",
        "/api/v1/mode" => "/api/v1/mode",
        "/api/v1/workflows/{workflow_id}/callback" => "/api/v1/workflows/{workflow_id}/callback",
        "/api/v1/channels" => "/api/v1/channels",
        "/api/v1/channels/{id}" => "/api/v1/channels/{id}",
        "/api/v1/breakers" => "/api/v1/breakers",
        "/api/v1/breakers/{vendor}/reset" => "/api/v1/breakers/{vendor}/reset",
        "/api/v1/openapi.json" => "/api/v1/openapi.json",
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
    if resp.status().is_server_error() {
        let logged = resp.extensions().get::<problem::Logged>();
        error!(
            %method,
            route,
            status = resp.status().as_u16(),
            detail = logged.map(|l| l.detail.as_str()),
            cause = logged.and_then(|l| l.cause.as_deref()),
            "request failed"
        );
    }
    resp
}

/// Starts the gateway in `harness` on `http.addr`; returns the address it
/// listens on.
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(harness: &Harness) -> anyhow::Result<std::net::SocketAddr> {
    let addr = harness.ctx().config.http.socket_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    start_on(harness, listener)
}

/// Starts the gateway in `harness` on an already bound listener (tests bind
/// port 0): the HTTP server is work named `gateway.http`, which lets
/// in-flight requests finish on shutdown.
///
/// # Errors
/// When the listener has no local address.
pub fn start_on(
    harness: &Harness,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<std::net::SocketAddr> {
    let addr = listener.local_addr()?;
    info!(%addr, "gateway listening");
    let ctx = harness.ctx().clone();
    let limits = server::Limits::new(&ctx.config.http, ctx.config.shutdown.grace());
    let group = ingest::Coalescer::start(harness);
    let app = router(AppState::new(ctx, group));
    harness.spawn("gateway.http", |stop| async move {
        server::serve(listener, app, limits, stop).await?;
        info!("gateway stopped");
        Ok(())
    });
    Ok(addr)
}
