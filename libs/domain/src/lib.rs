//! The domain of AWFDRS as plain data and pure functions: the ingestion
//! contract (`WorkflowEventV1` and its validation), slugs, stable ids,
//! failure signatures and incident states.
//!
//! Everything here is deterministic and free of I/O, so that the gateway and
//! the detector validate an event the same way and every decision can be
//! tested without a broker or a database. This crate must never talk to the
//! network, the clock (time is a parameter) or the file system.

pub mod event;
pub mod ids;
pub mod incident;
pub mod signature;
pub mod slug;

pub use event::{
    BodyHash, ErrorInfo, EventType, FieldError, ValidEvent, WorkflowEventV1, parse_event,
};
pub use ids::{event_id, new_api_key};
pub use incident::IncidentStatus;
pub use signature::{Signature, normalize_code};
pub use slug::{Slug, SlugError, is_slug};
