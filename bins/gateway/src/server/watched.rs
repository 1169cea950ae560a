//! The TCP stream under hyper: it tells the connection's [`Watch`] when
//! bytes arrive, guards the size of request heads and the number of their
//! header lines (answering one too large with a problem of its own, since
//! hyper's answer would be bare), and lingers on close so that a client
//! still sending reads the answer.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use super::MAX_HEADERS;
use super::watch::{Phase, Watch};
use crate::Problem;

/// How long a closing connection keeps reading (and discarding) what the
/// client still sends, so that a client still writing a body it was
/// refused reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// A TCP stream that tells its [`Watch`] when bytes arrive, guards the
/// size of request heads and their number of headers, and lingers on
/// close.
pub(super) struct Watched {
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
    /// Lines ended (LFs seen) before the empty line that ends the head:
    /// the request line and the header lines so far.
    lines: usize,
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
                self.lines += 1;
            }
        }
        false
    }

    /// Header lines ended so far (hyper counts each as one header).
    fn headers(&self) -> usize {
        self.lines.saturating_sub(1)
    }

    /// Why the head is refused, if it is: too large while it has not
    /// ended, or more header lines than the router takes.
    fn refusal(&self, max_head: usize, ended: bool) -> Option<Problem> {
        if self.headers() > MAX_HEADERS {
            Some(Problem::too_many_headers(MAX_HEADERS))
        } else if self.bytes > max_head && !ended {
            Some(if self.line_done {
                Problem::headers_too_large(max_head)
            } else {
                Problem::uri_too_long(max_head)
            })
        } else {
            None
        }
    }
}

impl Watched {
    pub(super) fn new(inner: TcpStream, watch: Arc<Watch>, max_head: usize) -> Self {
        Self {
            inner,
            watch,
            head: None,
            max_head,
            refused: None,
            linger: None,
        }
    }

    /// Writes the problem answer to a head that is refused. The socket's
    /// send buffer is empty here (no answer is in progress for a request
    /// whose head is not in), so one non-blocking write carries it.
    fn refuse(&mut self, scan: HeadScan, problem: Problem) {
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            problem.status,
            problem.title,
            body.len()
        );
        if let Err(e) = self.inner.try_write(answer.as_bytes()) {
            debug!(error = %e, "could not answer a refused request head");
        }
        debug!(
            bytes = scan.bytes,
            headers = scan.headers(),
            "request head too large; closing"
        );
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
            if let Some(problem) = scan.refusal(this.max_head, ended) {
                // hyper never sees this read: it reads the end of the stream
                // once the refusal has been answered.
                buf.set_filled(before);
                this.head = None;
                this.refuse(scan, problem);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &str) -> (HeadScan, bool) {
        let mut scan = HeadScan::default();
        let ended = scan.feed(head.as_bytes());
        (scan, ended)
    }

    fn headers(n: usize) -> String {
        (0..n).map(|i| format!("X-H{i}: v\r\n")).collect()
    }

    #[test]
    fn a_head_of_the_most_headers_the_router_takes_passes() {
        let (s, ended) = scan(&format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS)));
        assert!(ended);
        assert_eq!(s.headers(), MAX_HEADERS);
        assert!(s.refusal(16_384, ended).is_none());
    }

    #[test]
    fn one_header_more_is_refused_as_too_many_before_the_head_ends() {
        let (s, ended) = scan(&format!("GET / HTTP/1.1\r\n{}", headers(MAX_HEADERS + 1)));
        assert!(!ended);
        let p = s.refusal(1 << 20, ended).expect("refused");
        assert_eq!(p.status, 431);
        assert!(p.detail.contains("more than 100 headers"), "{}", p.detail);
    }

    #[test]
    fn a_large_head_is_refused_by_its_size_as_before() {
        let (s, ended) = scan(&format!("GET /{} HTTP/1.1", "a".repeat(100)));
        assert_eq!(s.refusal(50, ended).expect("refused").status, 414);
        let (s, ended) = scan(&format!("GET / HTTP/1.1\r\nX-Big: {}", "a".repeat(100)));
        assert_eq!(s.refusal(50, ended).expect("refused").status, 431);
        // Ended within the limit, or past it once ended: hyper judges it.
        let (s, ended) = scan("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(s.refusal(16_384, ended).is_none());
    }
}
