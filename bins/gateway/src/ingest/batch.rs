//! The body of `POST /api/v1/events/batch`: 1 to `max_batch_items` events
//! admitted together, each validated and accepted on its own, answered
//! with one result per event in order.

use awfdrs_store::Tenant;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::answer::{Fate, ItemResult, count_rejection};
use super::settle::accept;
use super::{admit, field, validate};
use crate::{AppState, Problem};

/// An authenticated batch whose body has been read.
pub(super) async fn ingest_batch(
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
