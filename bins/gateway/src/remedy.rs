//! The remediation API: actions (list, cancel, approve) and the tenant's
//! mode, scoped to the caller's tenant.

use awfdrs_domain::ActionStatus;
use awfdrs_store::{ActionFilter, StoreError, TenantMode};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::openapi::schema;
use crate::ops::{decode_cursor, encode_cursor, store_problem, text_problem};
use crate::{AppState, Problem, auth};

/// Query of `GET /api/v1/actions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionQuery {
    /// Only the actions of this incident.
    incident_id: Option<Uuid>,
    /// Only actions in this state (`PENDING`, `SCHEDULED`, `EXECUTING`,
    /// `SUCCEEDED`, `FAILED`, `CANCELLED`).
    #[param(max_length = 1024)]
    status: Option<String>,
    /// Only actions of this kind (`retry`, `escalate`, `hold`, `none`).
    #[param(max_length = 1024)]
    kind: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 1024)]
    cursor: Option<String>,
}

/// The caller's actions, newest first.
#[utoipa::path(
    get, path = "/api/v1/actions", tag = "remediation",
    params(ActionQuery),
    responses(
        (status = 200, description = "A page of actions", body = schema::ActionPage),
        (status = 400, description = "An unknown query parameter, a bad value or a bad cursor", content_type = "application/problem+json", body = schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "A bad filter, each named in `errors`", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_actions(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ActionQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let texts = [
            ("status", &q.status),
            ("kind", &q.kind),
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
            .map(str::parse::<ActionStatus>)
            .transpose()
            .map_err(|reason| Problem::invalid_field("status", reason))?;
        if let Some(kind) = &q.kind
            && !["retry", "escalate", "hold", "none"].contains(&kind.as_str())
        {
            return Err(Problem::invalid_field(
                "kind",
                "must be retry, escalate, hold or none",
            ));
        }
        let limit = q.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Problem::invalid_field("limit", "must be between 1 and 500"));
        }
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let page = state
            .ctx()
            .store
            .list_actions(&ActionFilter {
                tenant: caller.scope(),
                incident: q.incident_id,
                status,
                kind: q.kind,
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

/// Cancels an action that has not finished.
#[utoipa::path(
    post, path = "/api/v1/actions/{id}/cancel", tag = "remediation",
    params(("id" = Uuid, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The action, `CANCELLED`", body = schema::Action),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 404, description = "No such action for the caller", content_type = "application/problem+json", body = schema::Problem),
        (status = 409, description = "The action has already finished", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn cancel_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Path(id) = id.map_err(|e| Problem::bad_request(e.body_text()))?;
        let id =
            Uuid::parse_str(&id).map_err(|_| Problem::not_found(format!("no action {id:?}")))?;
        let action = state
            .ctx()
            .store
            .cancel_action(
                caller.scope(),
                id,
                &operator(&caller),
                "cancelled by an operator over the API",
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Problem::not_found("no such action"),
                StoreError::Conflict(why) => action_conflict(why),
                e => store_problem(e),
            })?;
        Ok::<_, Problem>(axum::Json(action))
    }
    .await;
    result.into_response()
}

/// Approves a retry waiting for an operator's approval: the coordinator
/// then passes it through the safety checks and schedules it.
#[utoipa::path(
    post, path = "/api/v1/actions/{id}/approve", tag = "remediation",
    params(("id" = Uuid, Path, description = "The action's id")),
    responses(
        (status = 200, description = "The action, still `PENDING`, with `approved_by` and `approved_at`; approving it again changes nothing", body = schema::Action),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 404, description = "No such action for the caller", content_type = "application/problem+json", body = schema::Problem),
        (status = 409, description = "The action is not waiting for approval", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn approve_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let Path(id) = id.map_err(|e| Problem::bad_request(e.body_text()))?;
        let id =
            Uuid::parse_str(&id).map_err(|_| Problem::not_found(format!("no action {id:?}")))?;
        let action = state
            .ctx()
            .store
            .approve_action(caller.scope(), id, &operator(&caller))
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Problem::not_found("no such action"),
                StoreError::Conflict(why) => action_conflict(why),
                e => store_problem(e),
            })?;
        Ok::<_, Problem>(axum::Json(action))
    }
    .await;
    result.into_response()
}

/// A `409` for an action that cannot do what was asked in its state.
fn action_conflict(why: String) -> Problem {
    Problem::new(
        axum::http::StatusCode::CONFLICT,
        "action-conflict",
        "The action cannot do that in its state",
        why,
    )
}

/// The actor an operator's change is recorded as.
pub(crate) fn operator(caller: &auth::Caller) -> String {
    match caller {
        auth::Caller::Tenant(t) => format!("operator:{}", t.slug),
        auth::Caller::Admin => "operator:admin".to_owned(),
    }
}

/// Body of `PUT /api/v1/mode`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModeBody {
    /// `auto`, `approve`, `shadow` or `off`.
    mode: String,
}

/// The tenant's remediation mode.
#[utoipa::path(
    get, path = "/api/v1/mode", tag = "remediation",
    responses(
        (status = 200, description = "The mode, and whether retries are paused", body = schema::Mode),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 403, description = "An admin key: the mode is a tenant's", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_mode(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("the mode")?;
        let mode = state
            .ctx()
            .store
            .tenant_mode(tenant)
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(mode))
    }
    .await;
    result.into_response()
}

/// Sets the tenant's remediation mode: `auto` acts, `approve` holds retries
/// for an operator, `shadow` records would-be actions and sends nothing,
/// `off` records decisions only.
#[utoipa::path(
    put, path = "/api/v1/mode", tag = "remediation",
    request_body(content = ModeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The mode as set", body = schema::Mode),
        (status = 400, description = "A body that is not JSON", content_type = "application/problem+json", body = schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = schema::Problem),
        (status = 403, description = "An admin key: the mode is a tenant's", content_type = "application/problem+json", body = schema::Problem),
        (status = 422, description = "An unknown mode", content_type = "application/problem+json", body = schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_mode(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::Json<serde_json::Value>, JsonRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("the mode")?;
        let axum::Json(body) = body.map_err(|e| Problem::bad_request(e.body_text()))?;
        // An object only: serde would also read the struct from an array.
        if !body.is_object() {
            return Err(Problem::bad_request("the body must be a JSON object"));
        }
        let body: ModeBody = serde_json::from_value(body).map_err(|e| {
            Problem::bad_request(format!(
                "bad body: {}",
                awfdrs_domain::printable(&e.to_string())
            ))
        })?;
        if !["auto", "approve", "shadow", "off"].contains(&body.mode.as_str()) {
            return Err(Problem::invalid_field(
                "mode",
                "must be auto, approve, shadow or off",
            ));
        }
        let store = &state.ctx().store;
        let current = store.tenant_mode(tenant).await.map_err(store_problem)?;
        let mode = TenantMode {
            mode: body.mode,
            paused: current.paused,
        };
        store
            .set_tenant_mode(tenant, &mode, &operator(&caller), "set over the API")
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(mode))
    }
    .await;
    result.into_response()
}
