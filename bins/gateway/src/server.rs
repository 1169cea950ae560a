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

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use awfdrs_config::HttpConfig;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub connections: usize,
    pub requests: usize,
    /// hyper's read buffer: the largest head it parses at all (it answers
    /// 431 itself above it).
    pub read_buffer: usize,
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
            // Heads between max_header_bytes and this get the router's
            // problem answer; larger ones hyper's bare 431.
            read_buffer: (http.max_header_bytes * 2).max(8192),
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

async fn connection(
    stream: TcpStream,
    router: axum::Router,
    requests: Arc<Semaphore>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched::new(stream, watch.clone()));
    let svc_watch = watch.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let requests = requests.clone();
        let watch = svc_watch.clone();
        async move {
            watch.set(Phase::Busy);
            // Never closed, so acquiring fails never.
            let permit = requests.acquire_owned().await;
            let resp = router.oneshot(req.map(Body::new)).await;
            drop(permit);
            watch.set(Phase::Idle);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(limits.read_buffer).keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = watch.deadline(&limits);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep => {
                if watch.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    debug!(phase = ?watch.phase(), "closing a connection past its timeout");
                    return;
                }
            }
            () = watch.changed.notified() => {}
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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
struct Watch {
    start: Instant,
    phase: AtomicU8,
    /// Milliseconds from `start` to the beginning of the phase.
    since_ms: AtomicU64,
    changed: Notify,
}

impl Watch {
    fn new() -> Self {
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

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        }
    }

    fn set(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection has begun a request.
    fn on_read(&self) {
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
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let limit = match self.phase() {
            Phase::Idle => limits.idle,
            Phase::Head => limits.header_read,
            Phase::Busy => return None,
        };
        let since = self.start + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        Some(since + limit)
    }
}

/// How long a closing connection keeps reading (and discarding) what the
/// client still sends, so that a client still writing a body it was
/// refused reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// A TCP stream that tells its [`Watch`] when bytes arrive, and lingers
/// on close.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
    /// Set once our side is shut down: until then, what arrives is discarded.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Watched {
    fn new(inner: TcpStream, watch: Arc<Watch>) -> Self {
        Self {
            inner,
            watch,
            linger: None,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 8192];
        for _ in 0..64 {
            if let Some(linger) = this.linger.as_mut()
                && linger.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Much still arriving: let other tasks run before reading on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
