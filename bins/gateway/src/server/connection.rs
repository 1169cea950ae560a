//! One connection: hyper's HTTP/1.1 over a [`Watched`] stream, each request
//! handled under the server's limit of requests at once, and the watchdog
//! that closes the connection past its idle or header-read deadline and
//! drains it gracefully on shutdown.

use std::sync::Arc;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::debug;

use super::Limits;
use super::watch::{Phase, Watch};
use super::watched::Watched;

pub(super) async fn connection(
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
