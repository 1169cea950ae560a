//! The HTTP API described: an OpenAPI 3.1 document built from the routes
//! themselves, served at `GET /api/v1/openapi.json`.
//!
//! The gateway's own routes are collected by [`utoipa_axum`]'s router from
//! their handlers' `#[utoipa::path]`, so a route served is a route
//! documented. The operations routes (`/metrics`, `/api/v1/health`,
//! `/api/v1/ready`) come from the runtime crate and are described here.
//!
//! The schemas of the resources are described here rather than derived in
//! the domain, store and guard crates: those stay free of an HTTP
//! documentation dependency, and the wire shapes are the contract's, which
//! these types spell out field by field.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use schema::{FieldError, Health, Problem, Readiness};

/// The document's frame: title, tags, security schemes and the routes
/// served by other crates; the gateway's routes join it in [`crate::api`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "AWFDRS",
        description = "Workflow failure detection and remediation: webhook ingestion and the operations API. Every 4xx and 5xx answer is an RFC 9457 problem (application/problem+json)."
    ),
    paths(metrics, health, ready),
    components(schemas(Problem, FieldError)),
    modifiers(&Security),
    tags(
        (name = "ingestion", description = "Events from webhook senders"),
        (name = "operations", description = "Incidents and breakers, scoped to the caller's tenant"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    )
)]
pub(crate) struct ApiDoc;

/// Names of the security schemes.
pub(crate) const BEARER: &str = "bearer";

/// Adds the security schemes: a bearer API key, and the Standard Webhooks
/// signature headers with the tenant header that goes with them.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`awfdrs tenants create`, `awfdrs admin create-key`); \
                         the key names the tenant, an admin key sees every tenant",
                    ))
                    .build(),
            ),
        );
        let header = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        for (scheme, name, what) in [
            (
                "webhook_id",
                "webhook-id",
                "Standard Webhooks: the message id",
            ),
            (
                "webhook_timestamp",
                "webhook-timestamp",
                "Standard Webhooks: Unix seconds, within 5 minutes of now",
            ),
            (
                "webhook_signature",
                "webhook-signature",
                "Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the tenant's secret",
            ),
            (
                "webhook_tenant",
                crate::auth::TENANT_HEADER,
                "The tenant's slug, naming whose webhook secret signed the request",
            ),
        ] {
            components.add_security_scheme(scheme, header(name, what));
        }
    }
}

/// The served document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    crate::api()
        .split_for_parts()
        .1
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
});

/// The OpenAPI document of the whole HTTP API.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    crate::api().split_for_parts().1
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = serde_json::Value)),
    security(())
)]
pub(crate) async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

// The operations routes served by `awfdrs_runtime::ops_router`.

/// Prometheus metrics of this process.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Metrics in the OpenMetrics text format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
    security(())
)]
#[allow(dead_code)]
fn metrics() {}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/api/v1/health", tag = "health",
    responses((status = 200, description = "Alive", body = Health)),
    security(())
)]
#[allow(dead_code)]
fn health() {}

/// Readiness: PostgreSQL and NATS both answer, each within 1 s.
#[utoipa::path(
    get, path = "/api/v1/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: each failing check names its cause", body = Readiness),
    ),
    security(())
)]
#[allow(dead_code)]
fn ready() {}

/// The wire shapes, described (never built: the handlers write them).
mod decision;
pub(crate) mod schema;
