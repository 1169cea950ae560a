//! Dead letters: hostile values never reach a header raw, every dead letter
//! is recorded in full before its original is terminated, a handler's panic
//! costs only its own message, a dependency outage spends no delivery, and
//! operators list, show and replay dead letters with `awfdrs dlq`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod consumer_loop;
mod dlq_cli;
mod encoding;
mod outage;

/// How long a test waits for what it expects to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(20);
