//! The notifier mode's channel receivers: local HTTP servers that check
//! each delivery's Standard Webhooks signature with their channel's secret
//! and note when each `webhook-id` first arrived and how often again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// What the receivers got, once stopped.
#[derive(Debug, Default)]
pub(in crate::bench) struct Received {
    /// When each `webhook-id` first arrived.
    pub first: HashMap<String, DateTime<Utc>>,
    /// Deliveries of a `webhook-id` that had arrived before.
    pub repeated: u64,
    /// Deliveries whose signature did not verify (answered 401).
    pub unverified: u64,
}

#[derive(Clone)]
struct Shared {
    secret: String,
    got: Arc<Mutex<Received>>,
    seen: Arc<AtomicU64>,
}

/// Running receivers, one per channel, sharing what they got.
pub(in crate::bench) struct Receivers {
    got: Arc<Mutex<Received>>,
    seen: Arc<AtomicU64>,
    stop: CancellationToken,
    /// Each receiver's URL, in the order of the secrets given.
    pub urls: Vec<String>,
}

impl Receivers {
    /// Starts one receiver on a free loopback port per secret.
    ///
    /// # Errors
    /// When a port cannot be bound.
    pub(in crate::bench) async fn start(secrets: &[String]) -> anyhow::Result<Self> {
        let got = Arc::new(Mutex::new(Received::default()));
        let seen = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let mut urls = Vec::new();
        for secret in secrets {
            let app = Router::new().route("/", post(take)).with_state(Shared {
                secret: secret.clone(),
                got: got.clone(),
                seen: seen.clone(),
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            urls.push(format!("http://{}/", listener.local_addr()?));
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            });
        }
        Ok(Self {
            got,
            seen,
            stop,
            urls,
        })
    }

    /// Distinct `webhook-id`s received so far.
    pub(in crate::bench) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Stops the receivers and returns what they got.
    pub(in crate::bench) fn stop(self) -> Received {
        self.stop.cancel();
        let mut got = self.got.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *got)
    }
}

async fn take(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Utc::now();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let id = header("webhook-id");
    let verified = awfdrs_domain::webhook::verify(
        &shared.secret,
        id,
        header("webhook-timestamp"),
        &body,
        header("webhook-signature"),
        at.timestamp(),
    );
    let mut got = shared.got.lock().unwrap_or_else(|p| p.into_inner());
    if verified.is_err() {
        got.unverified += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if got.first.contains_key(id) {
        got.repeated += 1;
    } else {
        got.first.insert(id.to_owned(), at);
        shared.seen.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}
