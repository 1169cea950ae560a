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

use crate::openapi::schema;
use crate::{AppState, Problem, auth};

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only incidents in this status.
    #[param(value_type = Option<schema::IncidentStatus>)]
    status: Option<String>,
    /// Only incidents of this workflow.
    #[param(max_length = 1024)]
    workflow_id: Option<String>,
    /// Only incidents of this vendor.
    #[param(max_length = 1024)]
    vendor: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 1024)]
    cursor: Option<String>,
}

/// The caller's incidents, most recently seen first.
#[utoipa::path(
    get, path = "/api/v1/incidents", tag = "operations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of incidents", body = schema::IncidentPage),
        (status = 400, description = "An unknown query parameter, a bad value or a bad cursor", content_type = "application/problem+json", body = schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "A bad filter, each named in `errors`", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
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
        let status = q
            .status
            .as_deref()
            .map(str::parse::<awfdrs_domain::IncidentStatus>)
            .transpose()
            .map_err(|reason| {
                Problem::invalid(vec![awfdrs_domain::FieldError {
                    field: "status".into(),
                    reason,
                }])
            })?;
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
                status,
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
pub(crate) fn text_problem(name: &str, value: &str) -> Option<awfdrs_domain::FieldError> {
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

/// One incident, with its decisions, actions and timeline.
#[utoipa::path(
    get, path = "/api/v1/incidents/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident", body = schema::IncidentDetail),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 404, description = "No such incident for the caller", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let id = incident_id(id)?;
        Ok::<_, Problem>(axum::Json(incident_body(&state, &caller, id).await?))
    }
    .await;
    result.into_response()
}

/// An operator resolves an incident: what its actions still wait for is
/// cancelled. Resolving a resolved incident changes nothing.
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/resolve", tag = "operations",
    params(("id" = Uuid, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident, `RESOLVED`, `resolved_by` the key", body = schema::IncidentDetail),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 404, description = "No such incident for the caller", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resolve_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let id = incident_id(id)?;
        let by = match &caller {
            auth::Caller::Tenant(t) => format!("operator:{}", t.slug),
            auth::Caller::Admin => "operator:admin".to_owned(),
        };
        state
            .ctx()
            .store
            .resolve_incident(
                caller.scope(),
                id,
                &by,
                "resolved by an operator over the API",
            )
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(incident_body(&state, &caller, id).await?))
    }
    .await;
    result.into_response()
}

/// An operator acknowledges an escalated incident: no further escalation
/// level is told of it. Acknowledging it again changes nothing.
#[utoipa::path(
    post, path = "/api/v1/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident, with `acknowledged_at` and `acknowledged_by`", body = schema::IncidentDetail),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 404, description = "No such incident for the caller", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn acknowledge_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let id = incident_id(id)?;
        let by = match &caller {
            auth::Caller::Tenant(t) => format!("operator:{}", t.slug),
            auth::Caller::Admin => "operator:admin".to_owned(),
        };
        state
            .ctx()
            .store
            .acknowledge_incident(caller.scope(), id, &by)
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(incident_body(&state, &caller, id).await?))
    }
    .await;
    result.into_response()
}

fn incident_id(id: Result<Path<String>, PathRejection>) -> Result<Uuid, Problem> {
    let Path(id) = id.map_err(|e| Problem::bad_request(e.body_text()))?;
    Uuid::parse_str(&id).map_err(|_| Problem::not_found(format!("no incident {id:?}")))
}

/// The single-incident view: the incident, its timeline, signature inputs,
/// decisions and actions.
async fn incident_body(
    state: &AppState,
    caller: &auth::Caller,
    id: Uuid,
) -> Result<serde_json::Value, Problem> {
    let store = &state.ctx().store;
    let detail = store
        .incident(caller.scope(), id)
        .await
        .map_err(store_problem)?;
    let (inputs, decisions, actions) = tokio::try_join!(
        store.signature_inputs(caller.scope(), id),
        store.decisions(caller.scope(), id),
        store.actions(caller.scope(), id),
    )
    .map_err(store_problem)?;
    let mut body = serde_json::to_value(&detail)
        .map_err(|e| Problem::internal("the incident could not be encoded").caused_by(&e))?;
    if let Some(o) = body.as_object_mut() {
        o.insert("signature_inputs".into(), json!(inputs));
        o.insert("decisions".into(), json!(decisions));
        o.insert("actions".into(), json!(actions));
    }
    Ok(body)
}

pub(crate) fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound => Problem::not_found("no such incident"),
        e if e.is_transient() => {
            Problem::unavailable("the database cannot be reached").caused_by(&e)
        }
        e => Problem::internal("the incidents could not be read").caused_by(&e),
    }
}

pub(crate) fn encode_cursor((at, id): (DateTime<Utc>, Uuid)) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_micros()))
}

/// The years a cursor's timestamp may fall in.
const CURSOR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

pub(crate) fn decode_cursor(s: &str) -> Result<(DateTime<Utc>, Uuid), Problem> {
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
#[utoipa::path(
    get, path = "/api/v1/breakers", tag = "operations",
    responses(
        (status = 200, description = "The breakers the caller may see", body = schema::BreakerPage),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_breakers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let mut items = state.inner.ctx.breakers.list(awfdrs_guard::now());
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
#[utoipa::path(
    post, path = "/api/v1/breakers/{vendor}/reset", tag = "operations",
    params(("vendor" = String, Path, description = "The vendor's slug")),
    responses(
        (status = 200, description = "The breaker, closed", body = schema::Breaker),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 403, description = "A tenant's key: only an admin key resets a breaker", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "`vendor` is not a slug", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The breakers' store cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
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
        let breakers = &state.inner.ctx.breakers;
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
