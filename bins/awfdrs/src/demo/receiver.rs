//! The demo's callback receiver: a local HTTP server that takes the retry
//! commands the scheduler POSTs to a workflow's callback and checks each
//! one's Standard Webhooks signature against the callback's secret, as a
//! producer's workflow engine would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

/// A delivery the receiver took: the tenant it was for, the message id and
/// whether its signature verified.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub tenant: String,
    pub webhook_id: String,
    pub verified: Result<(), String>,
}

#[derive(Clone)]
struct Shared {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    seen: mpsc::UnboundedSender<Delivery>,
}

/// A running receiver: register a tenant's secret, then read what arrives.
pub(super) struct Receiver {
    pub addr: SocketAddr,
    secrets: Arc<Mutex<HashMap<String, String>>>,
    pub seen: mpsc::UnboundedReceiver<Delivery>,
}

impl Receiver {
    /// Starts one on a free loopback port; it runs until the demo ends.
    pub async fn start() -> anyhow::Result<Self> {
        let secrets = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/callbacks/{tenant}", post(take))
            .with_state(Shared {
                secrets: secrets.clone(),
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
            seen: rx,
        })
    }

    /// The URL a tenant's callback is registered at.
    pub fn url(&self, tenant: &str) -> String {
        format!("http://{}/callbacks/{tenant}", self.addr)
    }

    /// Checks what arrives for `tenant` with `secret`.
    pub fn trust(&self, tenant: &str, secret: &str) {
        if let Ok(mut s) = self.secrets.lock() {
            s.insert(tenant.to_owned(), secret.to_owned());
        }
    }
}

async fn take(
    State(shared): State<Shared>,
    Path(tenant): Path<String>,
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
        .and_then(|s| s.get(&tenant).cloned());
    let webhook_id = header("webhook-id");
    let verified = match secret {
        None => Err(format!("no secret for {tenant}")),
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
    let status = if verified.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    let _ = shared.seen.send(Delivery {
        tenant,
        webhook_id,
        verified,
    });
    status
}
