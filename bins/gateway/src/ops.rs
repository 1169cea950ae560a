//! The operations API: incidents, scoped to the caller's tenant.

use awfdrs_store::{IncidentFilter, StoreError};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike as _, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{AppState, Problem, auth};

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    workflow_id: Option<String>,
    vendor: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

const STATUSES: [&str; 4] = ["NEW", "ANALYZING", "ACTIONED", "RESOLVED"];

pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let texts = [
            ("status", &q.status),
            ("workflow_id", &q.workflow_id),
            ("vendor", &q.vendor),
            ("cursor", &q.cursor),
        ];
        let bad: Vec<_> = texts
            .iter()
            .filter_map(|(name, v)| v.as_deref().and_then(|v| text_problem(name, v)))
            .collect();
        if !bad.is_empty() {
            return Err(Problem::invalid(bad));
        }
        if let Some(s) = &q.status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(Problem::invalid(vec![awfdrs_domain::FieldError {
                field: "status".into(),
                reason: format!("must be one of {}", STATUSES.join(", ")),
            }]));
        }
        let limit = q.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Problem::invalid(vec![awfdrs_domain::FieldError {
                field: "limit".into(),
                reason: "must be between 1 and 500".into(),
            }]));
        }
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let page = state
            .ctx()
            .store
            .list_incidents(&IncidentFilter {
                tenant: caller.scope(),
                status: q.status,
                workflow_id: q.workflow_id,
                vendor: q.vendor,
                after,
                limit,
            })
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(json!({
            "items": page.items,
            "next_cursor": page.next.map(encode_cursor),
        })))
    }
    .await;
    result.into_response()
}

/// Why a query value cannot be a filter: control characters (PostgreSQL
/// refuses a NUL in text) or more than 1024 bytes.
fn text_problem(name: &str, value: &str) -> Option<awfdrs_domain::FieldError> {
    let reason = if value.chars().any(char::is_control) {
        "must not contain control characters"
    } else if value.len() > 1024 {
        "must be at most 1024 bytes"
    } else {
        return None;
    };
    Some(awfdrs_domain::FieldError {
        field: name.to_owned(),
        reason: reason.to_owned(),
    })
}

pub(crate) async fn get_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Path(id) = id.map_err(|e| Problem::bad_request(e.body_text()))?;
        let id =
            Uuid::parse_str(&id).map_err(|_| Problem::not_found(format!("no incident {id:?}")))?;
        let detail = state
            .ctx()
            .store
            .incident(caller.scope(), id)
            .await
            .map_err(store_problem)?;
        let mut body = serde_json::to_value(&detail)
            .map_err(|e| Problem::internal("the incident could not be encoded").caused_by(&e))?;
        if let Some(o) = body.as_object_mut() {
            // Filled by the analyzer and the coordinator.
            o.entry("decisions").or_insert_with(|| json!([]));
            o.entry("actions").or_insert_with(|| json!([]));
        }
        Ok::<_, Problem>(axum::Json(body))
    }
    .await;
    result.into_response()
}

fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound => Problem::not_found("no such incident"),
        e if e.is_transient() => {
            Problem::unavailable("the database cannot be reached").caused_by(&e)
        }
        e => Problem::internal("the incidents could not be read").caused_by(&e),
    }
}

fn encode_cursor((at, id): (DateTime<Utc>, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_micros()))
}

/// The years a cursor's timestamp may fall in.
const CURSOR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn decode_cursor(s: &str) -> Result<(DateTime<Utc>, Uuid), Problem> {
    let bad = || Problem::bad_request("invalid cursor");
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    // Cursors are made from stored times; anything outside the years
    // PostgreSQL and chrono both hold is not one of ours.
    if !(CURSOR_YEARS).contains(&at.year()) {
        return Err(bad());
    }
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Every breaker for an admin; for a tenant's key only the breakers of the
/// vendors that tenant has sent events for, so a tenant does not learn
/// which vendors other tenants use.
pub(crate) async fn list_breakers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let mut items = state.inner.breakers.list(awfdrs_guard::now());
        if let Some(tenant) = caller.scope() {
            let vendors = state
                .ctx()
                .store
                .tenant_vendors(tenant)
                .await
                .map_err(store_problem)?;
            let vendors: std::collections::HashSet<String> = vendors.into_iter().collect();
            items.retain(|b| vendors.contains(&b.vendor));
        }
        Ok::<_, Problem>(axum::Json(json!({ "items": items, "next_cursor": null })))
    }
    .await;
    result.into_response()
}

/// Breakers are shared by every tenant, so only an admin key resets one.
pub(crate) async fn reset_breaker(
    State(state): State<AppState>,
    headers: HeaderMap,
    vendor: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Path(vendor) = vendor.map_err(|e| Problem::bad_request(e.body_text()))?;
        if caller.scope().is_some() {
            return Err(Problem::forbidden(
                "breakers are shared by every tenant: resetting one needs an admin key",
            ));
        }
        if !awfdrs_domain::is_slug(&vendor) {
            return Err(Problem::invalid(vec![awfdrs_domain::FieldError {
                field: "vendor".into(),
                reason: "must be a slug".into(),
            }]));
        }
        let breakers = &state.inner.breakers;
        breakers.reset(&vendor, "operator:api").await.map_err(|e| {
            if e.is_transient() {
                Problem::unavailable("the breaker cannot be reset now").caused_by(&e)
            } else {
                Problem::internal("the breaker could not be reset").caused_by(&e)
            }
        })?;
        let view = breakers
            .fetch(&vendor)
            .await
            .map_err(|e| Problem::unavailable("the breaker cannot be read now").caused_by(&e))?;
        Ok(axum::Json(view))
    }
    .await;
    result.into_response()
}
