//! The composition root of every AWFDRS process.
//!
//! [`Context::connect`] builds the process's shared resources once from the
//! configuration (the store, the bus, the rules, the breakers' view, the
//! rate limits and hard limits, the metrics, the tasks' health); a [`Harness`] runs the workers over it:
//! their named, tracked tasks, the one rules watcher and breakers watch of
//! the process, the outbox [`Relay`] and its sweeper, the operations
//! endpoint, and the drain on SIGTERM within the grace period. Every start
//! path (each binary's `main`, `awfdrs up`, `awfdrs worker`, the tests)
//! goes through it. [`StoreDeadLetters`] records the consumer loops' dead
//! letters in PostgreSQL.
//!
//! Nothing here decides anything: it wires.

mod context;
mod dead_letters;
mod harness;
mod ops;
pub mod outbound;
mod relay;
pub mod retention;
pub mod rounds;
mod sealing;
mod signals;
pub mod targets;
mod transactions;

pub use context::{Context, redact};
pub use dead_letters::StoreDeadLetters;
pub use harness::Harness;
pub use ops::{READY_CHECK_TIMEOUT, bind_ops, check_store, ops_router, serve_ops};
pub use relay::Relay;
pub use sealing::{keyring, require_secrets_key, with_keys};
pub use signals::shutdown_token;
pub use transactions::{outcome_of, retry_transient};

/// Runs `f`, containing a panic: `Err` holds the panic's message. For
/// background work that must outlive a bug in one round (the outbox relay).
///
/// # Errors
/// When `f` panicked.
pub async fn contain<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|panic| awfdrs_bus::consumer::panic_message(&*panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_contained_with_its_message() {
        assert_eq!(contain(async { 7 }).await, Ok(7));
        let r: Result<(), String> = contain(async { panic!("boom {}", 1) }).await;
        assert_eq!(r, Err("boom 1".to_owned()));
    }
}
