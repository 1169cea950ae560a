//! The table: one line per hostile input, grouped by what it attacks.

use base64::Engine as _;
use serde_json::json;

use crate::arbiter::{
    http_reused_key_after_nats, nats_reused_key_after_http, predictable_message_id,
    race_http_and_nats,
};
use crate::case::{
    Auth, Case, Expect, Input, Item, batch, case, ev, ev_with, get, nats, post, post_as, raw,
};
use crate::keys::{breakers_scoped, rotate_and_revoke, webhook_401_uniform};
use crate::limits::{cancelled_requests, oversized_invalid};
use crate::remedy::remediation_refused;

/// An incidents cursor whose timestamp is one PostgreSQL cannot hold.
fn out_of_range_cursor() -> String {
    let micros = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{micros}|{}", uuid::Uuid::nil()))
}

/// The table. One line per hostile input.
#[rustfmt::skip]
pub(crate) fn cases() -> Vec<Case> {
    use Expect::*;
    let nul = || json!("a\u{0}b");
    vec![
        // Values that would reach a NATS header or a log raw.
        case("http_correlation_id_newline", post(ev_with("http_correlation_id_newline", "correlation_id", json!("x\ny"))), Invalid("correlation_id")),
        case("http_correlation_id_escape", post(ev_with("http_correlation_id_escape", "correlation_id", json!("\u{1b}]0;owned\u{7}\r"))), Invalid("correlation_id")),
        case("http_correlation_id_tab", post(ev_with("http_correlation_id_tab", "correlation_id", json!("a\tb"))), Invalid("correlation_id")),
        case("http_batch_correlation_id_newline", batch(vec![ev("http_batch_corr-0"), ev_with("http_batch_corr-1", "correlation_id", json!("x\ny")), ev("http_batch_corr-2")]), Batch(vec![Item::S(202), Item::Invalid("correlation_id"), Item::S(202)])),
        case("nats_unknown_field_newline", nats(ev_with("nats_unknown_field_newline", "a\nb", json!(1))), Dead("unknown")),
        case("nats_correlation_id_newline_opens_incident", nats({ let mut v = ev_with("nats_corr_incident", "correlation_id", json!("x\ny\r\u{1b}[2J")); v["error"]["code"] = json!("payment_timeout"); v }), Settled),
        case("nats_unknown_field_escape", nats(ev_with("nats_unknown_field_escape", "\u{1b}[2J\r", json!(1))), Dead("unknown")),
        // Characters PostgreSQL cannot store: refused, never 202 then lost.
        case("http_nul_step", post(ev_with("http_nul_step", "step", nul())), Invalid("step")),
        case("http_nul_error_message", post(ev_with("http_nul_error_message", "error.message", nul())), Invalid("error.message")),
        case("http_nul_error_code", post(ev_with("http_nul_error_code", "error.code", nul())), Invalid("error.code")),
        case("http_nul_workflow_run_id", post(ev_with("http_nul_workflow_run_id", "workflow_run_id", nul())), Invalid("workflow_run_id")),
        case("http_nul_metadata_key", post(ev_with("http_nul_metadata_key", "metadata", json!({"a\u{0}b": 1}))), Invalid("metadata")),
        case("http_nul_metadata_value", post(ev_with("http_nul_metadata_value", "metadata.note", nul())), Invalid("metadata")),
        case("http_nul_metadata_nested", post(ev_with("http_nul_metadata_nested", "metadata", json!({"a": {"b": ["ok", "x\u{0}"]}}))), Invalid("metadata")),
        case("http_nul_idempotency_key", post(ev("http_nul_\u{0}_idempotency_key")), Invalid("idempotency_key")),
        case("http_nul_correlation_id", post(ev_with("http_nul_correlation_id", "correlation_id", nul())), Invalid("correlation_id")),
        case("http_batch_nul_items", batch(vec![ev("http_batch_nul-0"), ev("http_batch_nul-\u{0}1"), ev("http_batch_nul-2"), ev_with("http_batch_nul-3", "step", nul()), ev_with("http_batch_nul-4", "metadata", json!({"k\u{0}": 1})), ev_with("http_batch_nul-5", "correlation_id", nul())]), Batch(vec![Item::S(202), Item::Invalid("idempotency_key"), Item::S(202), Item::Invalid("step"), Item::Invalid("metadata"), Item::Invalid("correlation_id")])),
        case("nats_nul_step", nats(ev_with("nats_nul_step", "step", nul())), Dead("step")),
        case("nats_nul_error_message", nats(ev_with("nats_nul_error_message", "error.message", nul())), Dead("error.message")),
        case("nats_nul_workflow_run_id", nats(ev_with("nats_nul_workflow_run_id", "workflow_run_id", nul())), Dead("workflow_run_id")),
        case("nats_nul_metadata_key", nats(ev_with("nats_nul_metadata_key", "metadata", json!({"a\u{0}b": 1}))), Dead("metadata")),
        case("nats_nul_metadata_value", nats(ev_with("nats_nul_metadata_value", "metadata.note", nul())), Dead("metadata")),
        case("nats_nul_idempotency_key", nats(ev("nats_nul_\u{0}_idempotency_key")), Dead("idempotency_key")),
        case("nats_nul_correlation_id", nats(ev_with("nats_nul_correlation_id", "correlation_id", nul())), Dead("correlation_id")),
        // Message ids and the one arbiter of a key.
        case("predictable_message_id", Input::Scenario(|h| Box::pin(predictable_message_id(h))), Scenario),
        case("race_http_and_nats_two_bodies", Input::Scenario(|h| Box::pin(race_http_and_nats(h))), Scenario),
        case("nats_reused_key_after_http", Input::Scenario(|h| Box::pin(nats_reused_key_after_http(h))), Scenario),
        case("http_reused_key_after_nats", Input::Scenario(|h| Box::pin(http_reused_key_after_nats(h))), Scenario),
        // A dead letter too big to copy.
        case("nats_oversized_invalid_message", Input::Scenario(|h| Box::pin(oversized_invalid(h))), Scenario),
        // Slow and unauthenticated clients.
        case("raw_slow_headers", raw("POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"), Closed),
        case("raw_stalled_body", raw("POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"idem"), Closed),
        case("raw_unknown_key_body_not_read", raw("POST /api/v1/events/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer awf_0000\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n"), Answer(401)),
        // Cancellation.
        case("cancelled_requests_leave_no_transaction", Input::Scenario(|h| Box::pin(cancelled_requests(h))), Scenario),
        // Client errors are 4xx with problem+json.
        case("http_query_workflow_id_nul", get("/api/v1/incidents?workflow_id=%00"), ClientError),
        case("http_cursor_out_of_range", Input::Get(format!("/api/v1/incidents?cursor={}", out_of_range_cursor()), Auth::Bearer), ClientError),
        case("http_cursor_garbage", get("/api/v1/incidents?cursor=%FF%FE%00"), ClientError),
        case("http_limit_garbage", get("/api/v1/incidents?limit=-1"), ClientError),
        case("http_unknown_path", get("/api/v1/nope"), Status(404)),
        case("http_wrong_method", get("/api/v1/events"), Status(405)),
        case("raw_uri_too_long", Input::Raw(format!("GET /api/v1/incidents?x={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(70_000)).into_bytes()), Answer(414)),
        case("raw_too_many_headers", Input::Raw(format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()).into_bytes()), Answer(431)),
        // Keys.
        case("http_lowercase_bearer", post_as(Auth::LowerBearer, ev("http_lowercase_bearer")), Status(202)),
        case("http_two_authorization_headers", post_as(Auth::TwoHeaders, ev("http_two_authorization_headers")), Status(400)),
        case("http_bearer_and_signature_of_other_tenant", post_as(Auth::BearerAndSigned, ev("http_bearer_and_signature")), Status(401)),
        case("http_signed_webhook_accepted", post_as(Auth::Signed(None), ev("http_signed_webhook_accepted")), Status(202)),
        case("http_webhook_timestamp_i64_min", post_as(Auth::Signed(Some(i64::MIN)), ev("http_webhook_timestamp_min")), Status(401)),
        case("http_webhook_timestamp_i64_max", post_as(Auth::Signed(Some(i64::MAX)), ev("http_webhook_timestamp_max")), Status(401)),
        case("http_admin_key_cannot_ingest", post_as(Auth::Admin, ev("http_admin_key_cannot_ingest")), Status(401)),
        case("webhook_401_says_nothing_of_secrets", Input::Scenario(|h| Box::pin(webhook_401_uniform(h))), Scenario),
        case("rotate_and_revoke_key", Input::Scenario(|h| Box::pin(rotate_and_revoke(h))), Scenario),
        case("breakers_scoped_to_tenant", Input::Scenario(|h| Box::pin(breakers_scoped(h))), Scenario),
        // The remediation routes: path ids, list filters and the mode's body.
        case("remediation_routes_refuse_hostile_input", Input::Scenario(|h| Box::pin(remediation_refused(h))), Scenario),
        // Plain good traffic, which must keep working in between.
        case("http_good_event", post(ev("http_good_event")), Status(202)),
        case("nats_good_event", nats(ev("nats_good_event")), Settled),
    ]
}
