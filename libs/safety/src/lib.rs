//! The safety layer's decisions, as pure functions over plain data.
//!
//! This crate owns the rules that stand between a failure and a retry: the
//! per-vendor circuit breaker ([`breaker`]), GCRA rate limiting ([`gcra`]),
//! retry delays with deterministic jitter ([`retry`]) and hard retry limits
//! ([`limits`]), together with the plain settings types those rules read
//! ([`BreakerSettings`], [`RateLimit`], [`RetryPolicy`], [`HardLimits`]).
//! Workers fetch state (a JetStream KV entry, a Postgres row), call these
//! functions with the current time, and commit the result with
//! compare-and-set. This crate must not do I/O, read the clock, spawn tasks
//! or log: every input, `now` included, is a parameter, so every decision is
//! reproducible in a test. Its stateful half, which reads and writes the
//! shared state (KV entries, Postgres rows) around these decisions, is
//! `awfdrs-guard`.

pub mod breaker;
pub mod duration;
pub mod gcra;
mod hash;
pub mod limits;
pub mod retry;
mod settings;
mod time;

pub use settings::{
    BackoffKind, BreakerSettings, FieldProblem, HardLimits, RateLimit, RetryPolicy,
};
pub use time::Timestamp;
