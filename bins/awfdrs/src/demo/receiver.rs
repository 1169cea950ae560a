//! The demo's receiver: a local HTTP server that takes what the system
//! POSTs out (the retry commands the scheduler sends to a workflow's
//! callback, the notifications the notifier sends to a tenant's channels)
//! and checks each one's Standard Webhooks signature against the secret it
//! was registered with, as a producer's workflow engine or a channel's
//! service would. Each target is a path `/{purpose}/{key}`, trusted with
//! its own secret; a target told to fail answers 500.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

/// A delivery the receiver took: the target's key, the message id, whether
/// its signature verified, its body, when it came and what it was answered.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub key: String,
    pub webhook_id: String,
    pub verified: Result<(), String>,
    pub body: Bytes,
    pub at: Instant,
    pub answered: u16,
}

impl Delivery {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Clone)]
struct Shared {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    failing: Arc<Mutex<HashSet<String>>>,
    seen: mpsc::UnboundedSender<Delivery>,
}

/// A running receiver: register a target's secret, then read what arrives.
pub(super) struct Receiver {
    pub addr: SocketAddr,
    secrets: Arc<Mutex<HashMap<String, String>>>,
    failing: Arc<Mutex<HashSet<String>>>,
    seen: mpsc::UnboundedReceiver<Delivery>,
    /// Arrived, not yet asked for.
    pending: Vec<Delivery>,
}

impl Receiver {
    /// Starts one on a free loopback port; it runs until the demo ends.
    pub async fn start() -> anyhow::Result<Self> {
        let secrets = Arc::new(Mutex::new(HashMap::new()));
        let failing = Arc::new(Mutex::new(HashSet::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/{purpose}/{key}", post(take))
            .with_state(Shared {
                secrets: secrets.clone(),
                failing: failing.clone(),
                seen: tx,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            secrets,
            failing,
            seen: rx,
            pending: Vec::new(),
        })
    }

    /// The URL a tenant's callback is registered at (key: the tenant).
    pub fn url(&self, tenant: &str) -> String {
        self.target("callbacks", tenant)
    }

    /// The URL of the target `key`, for `purpose` (a path segment).
    pub fn target(&self, purpose: &str, key: &str) -> String {
        format!("http://{}/{purpose}/{key}", self.addr)
    }

    /// Checks what arrives for `key` with `secret`.
    pub fn trust(&self, key: &str, secret: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.insert(key.to_owned(), secret.to_owned());
        }
    }

    /// Answers 500 to whatever arrives for `key` (after checking it).
    pub fn fail(&self, key: &str) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(key.to_owned());
        }
    }

    /// The next delivery for `key`, waiting until `deadline`; deliveries
    /// for other keys are kept for whoever asks for them.
    pub async fn next_for(&mut self, key: &str, deadline: Instant) -> Option<Delivery> {
        if let Some(i) = self.pending.iter().position(|d| d.key == key) {
            return Some(self.pending.remove(i));
        }
        loop {
            match tokio::time::timeout_at(deadline.into(), self.seen.recv()).await {
                Ok(Some(d)) if d.key == key => return Some(d),
                Ok(Some(d)) => self.pending.push(d),
                _ => return None,
            }
        }
    }

    /// Every delivery for `key` that arrived so far, taken.
    pub fn taken(&mut self, key: &str) -> Vec<Delivery> {
        while let Ok(d) = self.seen.try_recv() {
            self.pending.push(d);
        }
        let (mine, rest) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|d| d.key == key);
        self.pending = rest;
        mine
    }
}

async fn take(
    State(shared): State<Shared>,
    Path((_purpose, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let secret = shared
        .secrets
        .lock()
        .ok()
        .and_then(|s| s.get(&key).cloned());
    let webhook_id = header("webhook-id");
    let verified = match secret {
        None => Err(format!("no secret for {key}")),
        Some(secret) => awfdrs_domain::webhook::verify(
            &secret,
            &webhook_id,
            &header("webhook-timestamp"),
            &body,
            &header("webhook-signature"),
            chrono::Utc::now().timestamp(),
        )
        .map_err(str::to_owned),
    };
    let failing = shared.failing.lock().is_ok_and(|f| f.contains(&key));
    let status = if verified.is_err() {
        StatusCode::UNAUTHORIZED
    } else if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let _ = shared.seen.send(Delivery {
        key,
        webhook_id,
        verified,
        body,
        at: Instant::now(),
        answered: status.as_u16(),
    });
    status
}
