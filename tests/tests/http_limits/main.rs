//! Slow, unauthenticated and malformed clients against the real gateway:
//! timeouts close what stalls, bodies are not read before authentication,
//! every error is a problem, keys can be rotated and revoked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod bodies;
mod keys;
mod problems;
mod timeouts;

/// How long a test waits for something that should happen at once or
/// after a timeout of a few hundred milliseconds.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Asserts that `answer` is a problem+json answer of `status`.
pub(crate) fn assert_problem(answer: &awfdrs_tests::RawAnswer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{answer:?}"
    );
    assert_eq!(answer.json()["status"], status, "{answer:?}");
}
