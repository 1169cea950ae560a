//! `POST /api/v1/events` and `POST /api/v1/events/batch`.

use std::collections::HashMap;
use std::num::NonZeroU32;

use awfdrs_bus::{Outgoing, headers};
use awfdrs_domain::{
    FieldError, ParsedEvent, ValidEvent, check_correlation_id, event_id, parse_value, printable,
};
use awfdrs_store::{Claimed, KeyClaim, Tenant};
use awfdrs_telemetry::{RejectLabels, SourceLabels};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument, error, info_span, warn};
use uuid::Uuid;

use crate::openapi::schema;
use crate::{AppState, Problem, auth};

/// The answer for one accepted (or duplicate) event.
#[derive(Debug, Serialize)]
struct Accepted {
    event_id: Uuid,
    correlation_id: String,
    duplicate: bool,
}

/// The answer for one item of a batch.
#[derive(Debug, Serialize)]
struct ItemResult {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

/// The fate of one event.
enum Fate {
    Accepted(Accepted),
    Duplicate(Accepted),
    Rejected(Problem),
}

impl Fate {
    fn into_item(self, index: usize) -> ItemResult {
        match self {
            Fate::Accepted(a) => ItemResult {
                index,
                status: 202,
                event_id: Some(a.event_id),
                correlation_id: Some(a.correlation_id),
                duplicate: Some(false),
                error: None,
            },
            Fate::Duplicate(a) => ItemResult {
                index,
                status: 200,
                event_id: Some(a.event_id),
                correlation_id: Some(a.correlation_id),
                duplicate: Some(true),
                error: None,
            },
            Fate::Rejected(p) => ItemResult {
                index,
                status: p.status,
                event_id: None,
                correlation_id: None,
                duplicate: None,
                error: Some(p),
            },
        }
    }
}

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
        (status = 503, description = "The broker or the database cannot take it now (with `Retry-After`); nothing is kept", content_type = "application/problem+json", body = schema::Problem),
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
    match auth::ingest(&state, &headers, body, auth::Route::Single).await {
        // `_held` keeps the body's share of the buffering budget until the answer.
        Ok((tenant, body, _held)) => ingest_single(&state, &tenant, &headers, body).await,
        Err(p) => {
            count_rejection(&state, &p);
            p.into_response()
        }
    }
}

/// One authenticated event whose body has been read.
async fn ingest_single(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        admit(state, tenant, 1)?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
        let ready = validate(&value, headers).map_err(Problem::invalid)?;
        let span =
            info_span!("ingest", tenant = %tenant.slug, correlation_id = %ready.correlation_id);
        let mut fates = accept(state, tenant, vec![ready]).instrument(span).await?;
        Ok::<_, Problem>(fates.pop())
    }
    .await;
    match result {
        Ok(Some(Fate::Accepted(a))) => (StatusCode::ACCEPTED, axum::Json(a)).into_response(),
        Ok(Some(Fate::Duplicate(a))) => (StatusCode::OK, axum::Json(a)).into_response(),
        Ok(Some(Fate::Rejected(p))) | Err(p) => {
            count_rejection(state, &p);
            p.into_response()
        }
        Ok(None) => Problem::internal("no result").into_response(),
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
        Ok((tenant, body, _held)) => ingest_batch(&state, &tenant, &headers, body).await,
        Err(p) => {
            count_rejection(&state, &p);
            p.into_response()
        }
    }
}

/// An authenticated batch whose body has been read.
async fn ingest_batch(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let max_items = state.ctx().config.http.max_batch_items;
    let result = async {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut o)
                if o.len() == 1 && o.get("events").is_some_and(Value::is_array) =>
            {
                match o.remove("events") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                }
            }
            _ => {
                return Err(Problem::invalid(vec![field(
                    "events",
                    "the body must be a JSON array of events or {\"events\": [...]}",
                )]));
            }
        };
        if items.is_empty() || items.len() > max_items {
            return Err(Problem::invalid(vec![field(
                "events",
                &format!("must hold 1 to {max_items} events, not {}", items.len()),
            )]));
        }
        admit(state, tenant, items.len())?;

        let mut results: Vec<Option<Fate>> = Vec::with_capacity(items.len());
        let mut ready = Vec::new();
        let mut ready_index = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match validate(item, headers) {
                Ok(r) => {
                    ready.push(r);
                    ready_index.push(i);
                    results.push(None);
                }
                Err(errs) => results.push(Some(Fate::Rejected(Problem::invalid(errs)))),
            }
        }
        let fates = accept(state, tenant, ready).await?;
        for (i, fate) in ready_index.into_iter().zip(fates) {
            results[i] = Some(fate);
        }
        Ok(results)
    }
    .await;
    match result {
        Ok(results) => {
            let items: Vec<ItemResult> = results
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let fate = f.unwrap_or_else(|| Fate::Rejected(Problem::internal("no result")));
                    if let Fate::Rejected(p) = &fate {
                        count_rejection(state, p);
                    }
                    fate.into_item(i)
                })
                .collect();
            (
                StatusCode::OK,
                axum::Json(serde_json::json!({ "results": items })),
            )
                .into_response()
        }
        Err(p) => {
            count_rejection(state, &p);
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

/// Reserves the keys, publishes the new events, commits the reservations
/// of those the broker acked. One fate per event, in order.
///
/// The work runs in its own task, so a client that goes away (or a timeout
/// that drops this future) cannot cut it between the reservation and its
/// commit or rollback: no transaction is left open, no key half-reserved.
async fn accept(
    state: &AppState,
    tenant: &Tenant,
    ready: Vec<Ready>,
) -> Result<Vec<Fate>, Problem> {
    let task = tokio::spawn(
        settle(state.clone(), tenant.clone(), ready).instrument(tracing::Span::current()),
    );
    task.await.unwrap_or_else(|e| {
        error!(error = %e, "ingestion task failed");
        Err(Problem::internal("the event could not be processed"))
    })
}

/// Where each event of a request stands once its key is settled.
enum Slot {
    /// The first event with its key: `claims[.0]`.
    Claim(usize),
    /// A later event with the key of `ready[first]`, settled by `claims[claim]`.
    Repeat { first: usize, claim: usize },
}

/// What became of one distinct key of the request.
#[derive(Clone)]
enum KeyFate {
    Accepted,
    NotPublished(String),
    Duplicate {
        event_id: Uuid,
        correlation_id: String,
    },
    Conflict {
        event_id: Uuid,
    },
}

async fn settle(state: AppState, tenant: Tenant, ready: Vec<Ready>) -> Result<Vec<Fate>, Problem> {
    let ctx = state.ctx();
    // Without the broker nothing can be accepted: answer at once rather
    // than hold a database connection through the publish timeout.
    if !ctx.bus.is_connected() {
        return Err(Problem::unavailable(
            "the message broker cannot be reached; nothing was accepted",
        ));
    }
    let ids: Vec<Uuid> = ready
        .iter()
        .map(|r| event_id(&tenant.slug, &r.event.event.idempotency_key))
        .collect();
    let mut first: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut slots = Vec::with_capacity(ready.len());
    let mut claims: Vec<(usize, KeyClaim)> = Vec::new();
    for (i, r) in ready.iter().enumerate() {
        let key = r.event.event.idempotency_key.as_str();
        if let Some(&(first, claim)) = first.get(key) {
            slots.push(Slot::Repeat { first, claim });
            continue;
        }
        first.insert(key, (i, claims.len()));
        slots.push(Slot::Claim(claims.len()));
        claims.push((
            i,
            KeyClaim {
                key: key.to_owned(),
                event_id: ids[i],
                body_hash: r.event.body_hash.0.to_vec(),
                correlation_id: r.correlation_id.clone(),
                reservation: Uuid::new_v4(),
            },
        ));
    }
    let key_claims: Vec<KeyClaim> = claims.iter().map(|(_, c)| c.clone()).collect();
    let (answers, reservation) = ctx
        .store
        .reserve_keys(tenant.id, &key_claims)
        .await
        .map_err(|e| {
            warn!(error = %e, "key reservation failed");
            Problem::unavailable("the database cannot take the event now")
        })?;

    let mut key_fates: Vec<KeyFate> = answers
        .into_iter()
        .map(|a| match a {
            Claimed::New => KeyFate::Accepted,
            Claimed::Duplicate {
                event_id,
                correlation_id,
            } => KeyFate::Duplicate {
                event_id,
                correlation_id,
            },
            Claimed::Conflict { event_id } => KeyFate::Conflict { event_id },
        })
        .collect();
    let fresh: Vec<usize> = (0..claims.len())
        .filter(|&c| matches!(key_fates[c], KeyFate::Accepted))
        .collect();
    let outgoing = fresh
        .iter()
        .map(|&c| {
            let (i, claim) = &claims[c];
            let r = &ready[*i];
            Outgoing {
                subject: ctx
                    .bus
                    .ns()
                    .events_subject(&tenant.slug, &r.event.event.workflow_id),
                // Random per reservation: nobody can publish ahead of us
                // with this id and have the broker drop ours as a duplicate.
                msg_id: claim.reservation.to_string(),
                correlation_id: Some(r.correlation_id.clone()),
                headers: vec![
                    (headers::SOURCE, "http".to_owned()),
                    (headers::RESERVATION, claim.reservation.to_string()),
                ],
                payload: r.canonical.clone(),
            }
        })
        .collect();
    let published = ctx.bus.publish_many(outgoing).await;
    let mut failed_keys = Vec::new();
    for (&c, result) in fresh.iter().zip(published) {
        let why = match result {
            Ok(p) if !p.duplicate => continue,
            // The broker holds another message with this id: ours was not
            // stored, whatever the ack says.
            Ok(_) => "the broker reported the message as a duplicate".to_owned(),
            Err(e) => e.to_string(),
        };
        ctx.metrics.publish_failures.inc();
        warn!(error = %why, key = %printable(&claims[c].1.key), "publish failed; the key is released");
        failed_keys.push(claims[c].1.key.clone());
        key_fates[c] = KeyFate::NotPublished(why);
    }
    // Committing keeps the reservations of what the broker stored; a
    // reservation rolled back (here or by a failed commit) makes the detector
    // drop its message should the broker still deliver it.
    if let Err(e) = reservation.commit(&failed_keys).await {
        warn!(error = %e, "key reservation commit failed");
        return Err(Problem::unavailable(
            "the database cannot take the event now; nothing was accepted",
        ));
    }

    Ok(ready
        .iter()
        .zip(slots)
        .enumerate()
        .map(|(i, (r, slot))| match slot {
            Slot::Claim(c) => key_fate(&state, r, ids[i], key_fates[c].clone()),
            Slot::Repeat { first, .. } if ready[first].event.body_hash != r.event.body_hash => {
                Fate::Rejected(conflict(r, ids[first]))
            }
            // The same body again: it shares its first occurrence's fate,
            // as a duplicate when that one was accepted.
            Slot::Repeat { first, claim } => match key_fates[claim].clone() {
                KeyFate::Accepted => {
                    duplicate(&state, ids[first], ready[first].correlation_id.clone())
                }
                other => key_fate(&state, r, ids[first], other),
            },
        })
        .collect())
}

fn key_fate(state: &AppState, r: &Ready, id: Uuid, fate: KeyFate) -> Fate {
    match fate {
        KeyFate::Accepted => {
            state
                .ctx()
                .metrics
                .events_accepted
                .get_or_create(&SourceLabels { source: "http" })
                .inc();
            Fate::Accepted(Accepted {
                event_id: id,
                correlation_id: r.correlation_id.clone(),
                duplicate: false,
            })
        }
        KeyFate::NotPublished(why) => not_published(&why),
        KeyFate::Duplicate {
            event_id,
            correlation_id,
        } => duplicate(state, event_id, correlation_id),
        KeyFate::Conflict { event_id } => Fate::Rejected(conflict(r, event_id)),
    }
}

fn not_published(why: &str) -> Fate {
    Fate::Rejected(Problem::unavailable(format!(
        "the message broker cannot take the event now ({why}); nothing was accepted"
    )))
}

fn duplicate(state: &AppState, event_id: Uuid, correlation_id: String) -> Fate {
    state
        .ctx()
        .metrics
        .events_duplicate
        .get_or_create(&SourceLabels { source: "http" })
        .inc();
    Fate::Duplicate(Accepted {
        event_id,
        correlation_id,
        duplicate: true,
    })
}

fn conflict(r: &Ready, first: Uuid) -> Problem {
    Problem::conflict(format!(
        "idempotency key {:?} was already used for event {first} with a different body",
        r.event.event.idempotency_key
    ))
}

fn count_rejection(state: &AppState, p: &Problem) {
    let reason = match p.status {
        400 => "malformed_json",
        401 => "unauthorized",
        409 => "key_reused",
        413 => "too_large",
        422 => "invalid_fields",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "other",
    };
    state
        .ctx()
        .metrics
        .events_rejected
        .get_or_create(&RejectLabels {
            source: "http",
            reason,
        })
        .inc();
}
