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

use crate::Problem;

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

async fn connection(
    stream: TcpStream,
    router: axum::Router,
    requests: Arc<Semaphore>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched::new(stream, watch.clone(), limits.max_head));
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
    builder
        .max_buf_size(limits.read_buffer.max(limits.max_head + 8192))
        .max_headers(MAX_PARSED_HEADERS)
        .keep_alive(true);
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

/// Headers hyper parses in one request; the router answers 431 above
/// `MAX_HEADERS` (hyper's own answer past this one would be bare).
const MAX_PARSED_HEADERS: usize = 1024;

/// How many headers a request may have.
pub(crate) const MAX_HEADERS: usize = 100;

/// How long a closing connection keeps reading (and discarding) what the
/// client still sends, so that a client still writing a body it was
/// refused reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// A TCP stream that tells its [`Watch`] when bytes arrive, guards the
/// size of request heads, and lingers on close.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
    /// The request head being read, while it is.
    head: Option<HeadScan>,
    max_head: usize,
    /// Set once a head was too large: what arrives is discarded until
    /// then, and hyper reads the end of the stream.
    refused: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once our side is shut down: until then, what arrives is discarded.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// How far a request head has come.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    bytes: usize,
    /// The request line has ended (a LF was seen).
    line_done: bool,
    /// The last four bytes, to find the CRLF CRLF that ends the head.
    tail: u32,
}

impl HeadScan {
    /// Feeds `bytes`; true once the head has ended.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.bytes += 1;
            self.tail = (self.tail << 8) | u32::from(b);
            if b == b'\n' {
                self.line_done = true;
                if self.tail == 0x0D0A_0D0A || self.tail & 0xFFFF == 0x0A0A {
                    return true;
                }
            }
        }
        false
    }
}

impl Watched {
    fn new(inner: TcpStream, watch: Arc<Watch>, max_head: usize) -> Self {
        Self {
            inner,
            watch,
            head: None,
            max_head,
            refused: None,
            linger: None,
        }
    }

    /// Writes the problem answer to a head that is too large. The socket's
    /// send buffer is empty here (no answer is in progress for a request
    /// whose head is not in), so one non-blocking write carries it.
    fn refuse(&mut self, scan: HeadScan) {
        let problem = if scan.line_done {
            Problem::headers_too_large(self.max_head)
        } else {
            Problem::uri_too_long(self.max_head)
        };
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            problem.status,
            problem.title,
            body.len()
        );
        if let Err(e) = self.inner.try_write(answer.as_bytes()) {
            debug!(error = %e, "could not answer a request head that is too large");
        }
        debug!(bytes = scan.bytes, "request head too large; closing");
        self.refused = Some(Box::pin(tokio::time::sleep(LINGER)));
    }

    /// Discards input until the refusal's linger ends, then reads as the
    /// end of the stream.
    fn poll_refused(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let mut scratch = [0u8; 8192];
        loop {
            if let Some(until) = self.refused.as_mut()
                && until.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.refused.is_some() {
            return this.poll_refused(cx);
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !matches!(result, Poll::Ready(Ok(()))) || buf.filled().len() == before {
            return result;
        }
        // A new request begins when bytes arrive on an idle connection.
        if this.head.is_none() && this.watch.phase() == Phase::Idle {
            this.head = Some(HeadScan::default());
        }
        this.watch.on_read();
        if let Some(mut scan) = this.head {
            let ended = scan.feed(&buf.filled()[before..]);
            if scan.bytes > this.max_head && !ended {
                // hyper never sees this read: it reads the end of the stream
                // once the refusal has been answered.
                buf.set_filled(before);
                this.head = None;
                this.refuse(scan);
                return this.poll_refused(cx);
            }
            this.head = if ended { None } else { Some(scan) };
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
