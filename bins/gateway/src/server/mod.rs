//! The HTTP/1.1 server under the gateway's router, with the bounds a
//! hostile client meets: a connection limit, a limit of requests handled at
//! once, and per-connection timeouts for reading a request's headers and
//! for waiting idle between requests. Bodies are read by the handlers,
//! after authentication, under their own limit and timeout.
//!
//! Each connection has a watchdog: while it waits for a request, the
//! connection may stay idle for `idle_timeout`; from the first byte of a
//! request to its last header byte it has `header_read_timeout`. A
//! connection past either deadline is closed. While a request is being
//! handled the watchdog sleeps: the handler bounds its own body read.
//!
//! The limits and the accept loop are here; one connection and its
//! watchdog are in `connection`, the watchdog's state in `watch`, and the
//! stream that guards request heads and lingers on close in `watched`.

use std::sync::Arc;
use std::time::Duration;

use awfdrs_config::HttpConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

mod connection;
mod watch;
mod watched;

use connection::connection;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub connections: usize,
    pub requests: usize,
    /// hyper's read buffer.
    pub read_buffer: usize,
    /// The largest request head (request line and headers) passed to hyper;
    /// a larger one is answered here with a problem (414 while the request
    /// line is still incomplete, else 431) and the connection closed.
    pub max_head: usize,
    /// How long open connections get to finish after shutdown.
    pub grace: Duration,
}

impl Limits {
    /// The limits configured in `http`, with `grace` to drain.
    pub(crate) fn new(http: &HttpConfig, grace: Duration) -> Self {
        Self {
            header_read: http.header_read_timeout(),
            idle: http.idle_timeout(),
            connections: http.max_connections,
            requests: http.max_concurrent_requests,
            read_buffer: (http.max_header_bytes * 2).max(8192),
            // Heads up to this are parsed and judged by the router (which
            // answers 414 and 431 problems for what exceeds the limits);
            // larger ones never reach hyper, whose own answers are bare.
            max_head: http.max_header_bytes + http.max_uri_bytes,
            grace,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then gives open
/// connections `limits.grace` to finish their requests.
///
/// # Errors
/// Never today; accept errors are logged and retried.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.connections));
    let requests = Arc::new(Semaphore::new(limits.requests));
    let tracker = TaskTracker::new();
    loop {
        // At the connection limit nothing is accepted: further clients wait
        // in the kernel's backlog rather than in this process's memory.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p?,
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let requests = requests.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            connection(stream, router, requests, limits, shutdown).await;
            drop(permit);
        });
    }
    tracker.close();
    if tokio::time::timeout(limits.grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            open = tracker.len(),
            "connections still open after the shutdown grace period are dropped"
        );
    }
    Ok(())
}

/// How many headers a request may have.
pub(crate) const MAX_HEADERS: usize = 100;
