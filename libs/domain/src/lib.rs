//! The domain of AWFDRS as plain data and pure functions: the ingestion
//! contract (`WorkflowEventV1` and its validation, from bytes to events),
//! slugs, stable ids, failure signatures, how failures group into incidents,
//! incident states, Standard Webhooks
//! signatures (the gateway verifies them, the CLI signs), and the rules for
//! producer text that reaches a header, a column or a log.
//!
//! Everything here is deterministic and free of I/O, so that the gateway and
//! the detector validate an event the same way and every decision can be
//! tested without a broker or a database. This crate must never talk to the
//! network, the clock (time is a parameter) or the file system.

pub mod action;
pub mod body;
pub mod decision;
pub mod event;
pub mod grouping;
pub mod ids;
pub mod incident;
pub mod messages;
pub mod signature;
pub mod slug;
pub mod target;
pub mod text;
pub mod webhook;

pub use action::{ActionStatus, EscalationV1, RetryCommandV1, action_id};
pub use body::{
    BatchError, BodyError, ItemResult, ParsedEvent, parse_batch, parse_body, parse_value,
};
pub use decision::DecisionV1;
pub use event::{
    BodyHash, ErrorInfo, EventType, FieldError, ValidEvent, WorkflowEventV1, canonical_bytes,
    parse_event,
};
pub use ids::{event_id, new_api_key};
pub use incident::IncidentStatus;
pub use messages::{FailedRetry, IncidentOpenedV1};
pub use signature::{Signature, normalize_code};
pub use slug::{Slug, SlugError, is_slug};
pub use text::{check_correlation_id, printable};
