//! Workflow callbacks: a tenant registers the URL its workflow engine
//! takes retry commands at (`PUT /api/v1/workflows/{workflow_id}/callback`)
//! and removes it (`DELETE`). The answer to a PUT carries the signing
//! secret, once; every PUT rotates it. URLs are checked hard: `http` or
//! `https`, no credentials, no control characters, at most 2 KiB, and no
//! loopback, private or link-local address unless
//! `notifications.allow_private_targets` is set.

use awfdrs_runtime::targets::check_target;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ops::store_problem;
use crate::{AppState, Problem, auth};

/// Body of `PUT /api/v1/workflows/{workflow_id}/callback`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallbackBody {
    /// Where the workflow's retry commands are POSTed: an `http` or `https`
    /// URL, at most 2048 bytes.
    #[schema(max_length = 2048)]
    url: String,
}

/// A registered callback with its signing secret (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CallbackSet {
    workflow_id: String,
    url: String,
    /// The Standard Webhooks signing secret (`whsec_...`) every delivery
    /// is signed with. Shown once; a new PUT replaces it.
    secret: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn workflow_of(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    let Path(workflow) = path.map_err(|e| Problem::bad_request(e.body_text()))?;
    if !awfdrs_domain::is_slug(&workflow) {
        return Err(Problem::invalid_field(
            "workflow_id",
            "must match [a-z0-9][a-z0-9_-]{0,62}",
        ));
    }
    Ok(workflow)
}

/// Registers (or replaces) the workflow's HTTP callback and answers its new
/// signing secret.
#[utoipa::path(
    put, path = "/api/v1/workflows/{workflow_id}/callback", tag = "remediation",
    params(("workflow_id" = String, Path, description = "The workflow's slug")),
    request_body(content = CallbackBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The callback, with its signing secret (shown once)", body = CallbackSet),
        (status = 400, description = "A body that is not JSON", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 403, description = "An admin key: a callback is a tenant's", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 422, description = "A bad workflow id or URL (scheme, credentials, control characters, length, or an address that is not allowed)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    workflow: Result<Path<String>, PathRejection>,
    body: Result<axum::Json<CallbackBody>, JsonRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("a callback")?;
        let workflow = workflow_of(workflow)?;
        let axum::Json(body) = body.map_err(|e| Problem::bad_request(e.body_text()))?;
        let allow_private = state.ctx().config.notifications.allow_private_targets;
        let target = check_target(&body.url, allow_private)
            .await
            .map_err(|why| Problem::invalid_field("url", why))?;
        let secret = awfdrs_domain::webhook::new_secret();
        let set = state
            .ctx()
            .store
            .set_callback(tenant, &workflow, target.url.as_str(), &secret)
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(CallbackSet {
            workflow_id: set.workflow_id,
            url: set.url,
            secret,
            created_at: set.created_at,
            updated_at: set.updated_at,
        }))
    }
    .await;
    result.into_response()
}

/// Removes the workflow's HTTP callback; retry commands not yet delivered
/// to it are given up.
#[utoipa::path(
    delete, path = "/api/v1/workflows/{workflow_id}/callback", tag = "remediation",
    params(("workflow_id" = String, Path, description = "The workflow's slug")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 403, description = "An admin key: a callback is a tenant's", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 404, description = "The workflow has no callback", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 422, description = "A bad workflow id", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    workflow: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("a callback")?;
        let workflow = workflow_of(workflow)?;
        let removed = state
            .ctx()
            .store
            .remove_callback(tenant, &workflow)
            .await
            .map_err(store_problem)?;
        if removed {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(Problem::not_found(format!(
                "the workflow {workflow} has no callback"
            )))
        }
    }
    .await;
    result.into_response()
}
