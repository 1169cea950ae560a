//! `POST /api/v1/events` and `POST /api/v1/events/batch`.
//!
//! The handlers are here, with what both routes share: ingress admission
//! and the validation of one event. The body of each route is in `single`
//! and `batch`; reserving, publishing and committing is in `settle`; group
//! commit of concurrent single-event requests is in `group`; the answers
//! are in `answer`.

use std::num::NonZeroU32;

use awfdrs_bus::headers;
use awfdrs_domain::{FieldError, ParsedEvent, ValidEvent, check_correlation_id, parse_value};
use awfdrs_store::Tenant;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use serde_json::Value;
use uuid::Uuid;

use crate::openapi::schema;
use crate::{AppState, Problem, auth};

mod answer;
mod batch;
mod group;
mod settle;
mod single;

use answer::count_rejection;
pub(crate) use group::Coalescer;

/// A validated event ready to reserve and publish.
struct Ready {
    event: ValidEvent,
    canonical: Bytes,
    correlation_id: String,
}

/// Accepts one event: `202` once it is durable in the broker.
#[utoipa::path(
    post, path = "/api/v1/events", tag = "ingestion",
    request_body(content = schema::WorkflowEventV1, content_type = "application/json"),
    params(("X-Correlation-ID" = Option<String>, Header, description = "The correlation id when the event has none")),
    responses(
        (status = 202, description = "Accepted: durable in the broker", body = schema::Accepted),
        (status = 200, description = "A repeated idempotency key with the same body", body = schema::Accepted),
        (status = 400, description = "Malformed JSON, or two `Authorization` headers", content_type = "application/problem+json", body = schema::Problem),
        (status = 401, description = "No key, a bad key, or a bad signature", content_type = "application/problem+json", body = schema::Problem),
        (status = 413, description = "The body is over the route's limit", content_type = "application/problem+json", body = schema::Problem),
        (status = 429, description = "The tenant's ingress rate is exceeded (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The broker or the database cannot take it now, or the gateway has as many events waiting as it may (with `Retry-After`); nothing is kept", content_type = "application/problem+json", body = schema::Problem),
        (status = 409, description = "The idempotency key was accepted with another body", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "Invalid fields, each named in `errors`", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []), ("webhook_id" = [], "webhook_timestamp" = [], "webhook_signature" = [], "webhook_tenant" = []))
)]
pub(crate) async fn single(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Counted from here, so a group lingers for requests still being read.
    let coming = state.inner.group.as_ref().map(Coalescer::coming);
    match auth::ingest(&state, &headers, body, auth::Route::Single).await {
        // `_held` keeps the body's share of the buffering budget until the answer.
        Ok((tenant, body, _held)) => {
            single::ingest_single(&state, &tenant, &headers, body, coming).await
        }
        Err(p) => {
            count_rejection(&state, &p);
            p.into_response()
        }
    }
}

/// Accepts 1 to 500 events, each with its own result.
#[utoipa::path(
    post, path = "/api/v1/events/batch", tag = "ingestion",
    request_body(content = schema::Batch, content_type = "application/json"),
    params(("X-Correlation-ID" = Option<String>, Header, description = "The correlation id of events that have none")),
    responses(
        (status = 200, description = "One result per event, in order", body = schema::BatchResults),
        (status = 400, description = "Malformed JSON, or two `Authorization` headers", content_type = "application/problem+json", body = schema::Problem),
        (status = 401, description = "No key, a bad key, or a bad signature", content_type = "application/problem+json", body = schema::Problem),
        (status = 413, description = "The body is over the route's limit", content_type = "application/problem+json", body = schema::Problem),
        (status = 429, description = "The tenant's ingress rate is exceeded (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The broker or the database cannot take it now (with `Retry-After`); nothing is kept", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "No events, or more than 500 (`events` named)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []), ("webhook_id" = [], "webhook_timestamp" = [], "webhook_signature" = [], "webhook_tenant" = []))
)]
pub(crate) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match auth::ingest(&state, &headers, body, auth::Route::Batch).await {
        Ok((tenant, body, _held)) => batch::ingest_batch(&state, &tenant, &headers, body).await,
        Err(p) => {
            count_rejection(&state, &p);
            p.into_response()
        }
    }
}

fn field(name: &str, reason: &str) -> FieldError {
    FieldError {
        field: name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Per-tenant ingress admission (GCRA in this process).
fn admit(state: &AppState, tenant: &Tenant, cells: usize) -> Result<(), Problem> {
    let n = NonZeroU32::new(u32::try_from(cells).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    match state.inner.limiter.check_key_n(&tenant.id, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(Problem::too_many(wait.as_secs_f64().ceil() as u64))
        }
        // More cells than the burst can ever hold: the batch is too big
        // for this tenant's limit at any moment.
        Err(_) => Err(Problem::too_many(1)),
    }
}

fn validate(value: &Value, headers: &HeaderMap) -> Result<Ready, Vec<FieldError>> {
    let ParsedEvent { valid, canonical } = parse_value(value, Utc::now())?;
    let header = match headers.get(headers::CORRELATION_ID) {
        None => None,
        Some(v) => {
            let v = v.to_str().ok().filter(|v| check_correlation_id(v).is_ok());
            Some(v.ok_or_else(|| {
                vec![field(
                    "X-Correlation-ID",
                    "must be 1 to 255 characters without control characters",
                )]
            })?)
        }
    };
    let correlation_id = valid
        .event
        .correlation_id
        .clone()
        .or_else(|| header.map(str::to_owned))
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    Ok(Ready {
        event: valid,
        canonical: Bytes::from(canonical),
        correlation_id,
    })
}
