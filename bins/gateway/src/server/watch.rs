//! A connection's phase and its deadline: the watchdog's state, shared by
//! the connection's reader (bytes arrived), its service (a request is
//! handled, or done) and the watchdog itself (when to close).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the first byte of a request.
    Idle = 0,
    /// A request has begun; its headers are not all in.
    Head = 1,
    /// A request is being handled.
    Busy = 2,
}

/// A connection's phase and since when, shared by its reader, its service
/// and its watchdog.
#[derive(Debug)]
pub(super) struct Watch {
    start: Instant,
    phase: AtomicU8,
    /// Milliseconds from `start` to the beginning of the phase.
    since_ms: AtomicU64,
    pub(super) changed: Notify,
}

impl Watch {
    pub(super) fn new() -> Self {
        Self {
            start: Instant::now(),
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    pub(super) fn set(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection has begun a request.
    pub(super) fn on_read(&self) {
        if self
            .phase
            .compare_exchange(
                Phase::Idle as u8,
                Phase::Head as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.since_ms.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// When the current phase times out; None while a request is handled.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let limit = match self.phase() {
            Phase::Idle => limits.idle,
            Phase::Head => limits.header_read,
            Phase::Busy => return None,
        };
        let since = self.start + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        Some(since + limit)
    }
}
