//! The body of `POST /api/v1/events`: one event admitted, validated,
//! accepted (in a group with concurrent requests when group commit is on),
//! and answered on its own.

use awfdrs_store::Tenant;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tracing::{Instrument, info_span};

use super::answer::{Fate, count_rejection};
use super::group::Coming;
use super::settle::accept;
use super::{admit, validate};
use crate::{AppState, Problem};

/// One authenticated event whose body has been read; `coming` counts it
/// on its way to a group when group commit is on.
pub(super) async fn ingest_single(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    body: Bytes,
    coming: Option<Coming>,
) -> Response {
    let result = async {
        admit(state, tenant, 1)?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
        let ready = validate(&value, headers).map_err(Problem::invalid)?;
        let span =
            info_span!("ingest", tenant = %tenant.slug, correlation_id = %ready.correlation_id);
        match (&state.inner.group, coming) {
            (Some(group), Some(coming)) => group
                .submit(tenant, ready, coming)
                .instrument(span)
                .await
                .map(Some),
            _ => {
                let mut fates = accept(state, tenant, vec![ready]).instrument(span).await?;
                Ok::<_, Problem>(fates.pop())
            }
        }
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
