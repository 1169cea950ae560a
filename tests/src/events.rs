//! Events as producers send them, and the hash the system stores of one.

use serde_json::{Value, json};

/// A failure event.
pub fn failure(key: &str, workflow: &str, code: &str) -> Value {
    json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": "step_failed",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "step": "charge",
        "vendor": "stripe",
        "error": {"code": code, "message": "timed out", "http_status": 504}
    })
}

/// A success event.
pub fn success(key: &str, workflow: &str) -> Value {
    json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": "step_succeeded",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "step": "charge",
        "vendor": "stripe"
    })
}

/// The body hash the system stores for `body` (canonical JSON, SHA-256).
pub fn body_hash(body: &Value) -> Vec<u8> {
    awfdrs_domain::BodyHash::of(body).0.to_vec()
}
