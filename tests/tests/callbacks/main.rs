//! Workflow HTTP callbacks end to end: a registered callback receives each
//! retry command exactly as published on NATS, signed with Standard
//! Webhooks (checked here by an independent implementation, the
//! `standardwebhooks` crate), retried with backoff and `Retry-After` until
//! delivered, and recorded on the action; URLs are checked hard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delivery;
mod support;
mod urls;
