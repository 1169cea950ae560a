//! The answers of ingestion: what one event became ([`Fate`]), how it is
//! shown alone or as an item of a batch, and the rejection counter.

use awfdrs_telemetry::RejectLabels;
use serde::Serialize;
use uuid::Uuid;

use crate::{AppState, Problem};

/// The answer for one accepted (or duplicate) event.
#[derive(Debug, Serialize)]
pub(super) struct Accepted {
    pub(super) event_id: Uuid,
    pub(super) correlation_id: String,
    pub(super) duplicate: bool,
}

/// The answer for one item of a batch.
#[derive(Debug, Serialize)]
pub(super) struct ItemResult {
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
pub(super) enum Fate {
    Accepted(Accepted),
    Duplicate(Accepted),
    Rejected(Problem),
}

impl Fate {
    pub(super) fn into_item(self, index: usize) -> ItemResult {
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

pub(super) fn count_rejection(state: &AppState, p: &Problem) {
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
