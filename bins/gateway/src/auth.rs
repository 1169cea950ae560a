//! Who is calling: `Authorization: Bearer <key>` names a tenant (or is an
//! admin key), or a Standard Webhooks signature with the tenant's secret
//! vouches for an ingestion request that names its tenant.
//!
//! A bearer key is checked from the headers alone, before the body is
//! read. A signature covers the body, so a signed request's body is read
//! first; such reads are bounded in number (a semaphore) and in bytes (the
//! single-event limit, and a smaller cap for batches). A request with
//! neither is refused before a byte of its body is read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_domain::webhook;
use awfdrs_store::{StoreError, Tenant};
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::{AppState, Problem};

/// How long a resolved key is trusted without asking the database again.
///
/// A key rotated or revoked in the database stops working at every gateway
/// within this long, with no message between processes to lose. It costs
/// one indexed lookup per key, per process, per second: nothing next to
/// the writes of the requests it authenticates.
const KEY_TTL: Duration = Duration::from_secs(1);
const KEY_CACHE_CAPACITY: usize = 10_000;
/// The header that names the tenant of a signed webhook.
pub(crate) const TENANT_HEADER: &str = "x-awfdrs-tenant";
const WEBHOOK_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// One answer for every way a signature can fail to vouch for a tenant
/// (no such tenant, no secret, wrong signature), so the answer does not
/// tell which tenants have a webhook secret.
const BAD_SIGNATURE: &str = "the webhook signature does not verify with the webhook secret of the tenant named in X-Awfdrs-Tenant";

/// The caller of an operations endpoint.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Tenant(Tenant),
    Admin,
}

impl Caller {
    /// The tenant the caller is restricted to, None for an admin.
    pub(crate) fn scope(&self) -> Option<uuid::Uuid> {
        match self {
            Self::Tenant(t) => Some(t.id),
            Self::Admin => None,
        }
    }

    /// The caller's tenant, for what belongs to one tenant (`what`: "a
    /// channel", "the mode"); an admin key is `403`.
    pub(crate) fn tenant_only(&self, what: &str) -> Result<uuid::Uuid, crate::problem::Problem> {
        self.scope().ok_or_else(|| {
            crate::problem::Problem::forbidden(format!(
                "{what} is a tenant's: use the tenant's key"
            ))
        })
    }
}

/// The ingestion route a body is read for: it decides the byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Single,
    Batch,
}

/// Resolved keys, by the SHA-256 of the key (the key itself is not kept).
#[derive(Debug)]
pub(crate) struct KeyCache(quick_cache::sync::Cache<[u8; 32], (Caller, Instant)>);

impl KeyCache {
    pub(crate) fn new() -> Self {
        Self(quick_cache::sync::Cache::new(KEY_CACHE_CAPACITY))
    }
}

fn not_bearer() -> Problem {
    Problem::unauthorized("the Authorization header is not `Bearer <api key>`")
}

/// The bearer key of a request, if it sends an Authorization header. The
/// scheme is case-insensitive; two Authorization headers are refused.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::bad_request(
            "send one Authorization header, not several",
        ));
    }
    let value = value.to_str().map_err(|_| not_bearer())?.trim();
    let (scheme, key) = value.split_once(' ').ok_or_else(not_bearer)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(not_bearer());
    }
    Ok(Some(key))
}

/// The caller a bearer key names, from the cache or the database.
async fn resolve(state: &AppState, key: &str) -> Result<Caller, Problem> {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if let Some((caller, at)) = state.inner.keys.0.get(&digest)
        && at.elapsed() < KEY_TTL
    {
        return Ok(caller);
    }
    let store = &state.ctx().store;
    let found = match store.tenant_by_api_key(key).await {
        Ok(Some(tenant)) => Some(Caller::Tenant(tenant)),
        Ok(None) => match store.is_admin_key(key).await {
            Ok(true) => Some(Caller::Admin),
            Ok(false) => None,
            Err(e) => return Err(unavailable(&e)),
        },
        Err(e) => return Err(unavailable(&e)),
    };
    let Some(caller) = found else {
        state.inner.keys.0.remove(&digest);
        return Err(Problem::unauthorized("unknown API key"));
    };
    state
        .inner
        .keys
        .0
        .insert(digest, (caller.clone(), Instant::now()));
    Ok(caller)
}

/// The caller of an operations endpoint (tenant or admin key).
///
/// # Errors
/// 400 for two Authorization headers; 401 when the key is missing or
/// unknown; 503 when the database is down.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let key = bearer(headers)?.ok_or_else(|| {
        Problem::unauthorized(
            "missing Authorization header; send `Authorization: Bearer <api key>`",
        )
    })?;
    resolve(state, key).await
}

fn unavailable(e: &awfdrs_store::StoreError) -> Problem {
    tracing::warn!(error = %e, "api key lookup failed");
    Problem::unavailable("the database cannot be reached").caused_by(e)
}

/// The Standard Webhooks headers of a signed request.
struct Signed<'a> {
    id: &'a str,
    timestamp: &'a str,
    signature: &'a str,
    slug: &'a str,
}

/// The signature headers, None when the request sends none of them.
fn signed(headers: &HeaderMap) -> Result<Option<Signed<'_>>, Problem> {
    if !WEBHOOK_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return Ok(None);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature), Some(slug)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        header(TENANT_HEADER),
    ) else {
        return Err(Problem::unauthorized(
            "a signed webhook sends webhook-id, webhook-timestamp and webhook-signature, \
             and names its tenant in X-Awfdrs-Tenant",
        )
        .closing());
    };
    webhook::check_timestamp(timestamp, chrono::Utc::now().timestamp())
        .map_err(|why| Problem::unauthorized(why).closing())?;
    Ok(Some(Signed {
        id,
        timestamp,
        signature,
        slug: slug.trim(),
    }))
}

/// The tenant whose webhook secret signed `body`.
async fn verify(state: &AppState, s: &Signed<'_>, body: &[u8]) -> Result<Tenant, Problem> {
    if !awfdrs_domain::is_slug(s.slug) {
        return Err(Problem::unauthorized(BAD_SIGNATURE));
    }
    let found = match state.ctx().store.tenant_webhook_secret(s.slug).await {
        Ok(found) => found,
        // A secret that cannot be opened (its key is not configured, or
        // it was altered) checks no signature: the same 401 as a wrong
        // one, and the cause for the operator in the log.
        Err(e @ StoreError::Sealed(_)) => {
            tracing::error!(tenant = %s.slug, error = %e, "webhook secret cannot be opened");
            return Err(Problem::unauthorized(BAD_SIGNATURE));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    let now = chrono::Utc::now().timestamp();
    match found {
        Some((tenant, secret))
            if webhook::verify(&secret, s.id, s.timestamp, body, s.signature, now).is_ok() =>
        {
            Ok(tenant)
        }
        _ => Err(Problem::unauthorized(BAD_SIGNATURE)),
    }
}

/// Authenticates an ingestion request and reads its body; the body's
/// share of the buffering budget is held until the returned [`Held`] drops.
///
/// A bearer key is resolved from the headers, then the body is read with
/// the route's limit. A signed request (no bearer key) waits for no slot:
/// when every slot for unauthenticated bodies is taken it gets 503 at once;
/// otherwise its body is read with the single-event limit (or the webhook
/// batch cap) and then verified. With both, the key and the signature must
/// name the same tenant and the signature must verify.
///
/// # Errors
/// 400 (two Authorization headers, unreadable body), 401, 408, 413, 503.
pub(crate) async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    route: Route,
) -> Result<(Tenant, Bytes, Held), Problem> {
    let http = &state.ctx().config.http;
    let key = bearer(headers).map_err(Problem::closing)?;
    let signed = signed(headers)?;
    match (key, signed) {
        (Some(key), signed) => {
            let tenant = match resolve(state, key).await.map_err(Problem::closing)? {
                Caller::Tenant(t) => t,
                Caller::Admin => {
                    return Err(Problem::unauthorized(
                        "admin keys cannot ingest events: use the tenant's key",
                    )
                    .closing());
                }
            };
            if let Some(s) = &signed
                && s.slug != tenant.slug
            {
                return Err(Problem::unauthorized(
                    "the bearer key and the webhook signature name different tenants",
                )
                .closing());
            }
            let limit = match route {
                Route::Single => http.body_limit_bytes,
                Route::Batch => http.batch_body_limit_bytes,
            };
            let (body, held) = read_body(state, body, headers, limit).await?;
            if let Some(s) = &signed {
                verify(state, s, &body).await?;
            }
            Ok((tenant, body, held))
        }
        (None, Some(s)) => {
            let limit = match route {
                Route::Single => http.body_limit_bytes,
                Route::Batch => http.webhook_batch_body_limit_bytes,
            };
            let (body, held) = {
                let _slot = state.inner.unauthenticated.try_acquire().map_err(|_| {
                    Problem::unavailable("too many signed requests are being read now; retry")
                        .closing()
                })?;
                read_body(state, body, headers, limit).await?
            };
            let tenant = verify(state, &s, &body).await?;
            Ok((tenant, body, held))
        }
        (None, None) => Err(Problem::unauthorized(
            "send `Authorization: Bearer <api key>`, or sign with the Standard Webhooks headers \
             and name the tenant in X-Awfdrs-Tenant",
        )
        .closing()),
    }
}

/// Reads a body of at most `limit` bytes within `timeout`; a declared
/// length above the limit is refused before anything is read. What is
/// buffered counts against the process's body budget as it arrives.
///
/// # Errors
/// 413 above the limit, 408 after the timeout, 503 when the budget is
/// spent, 400 when the client's body breaks off.
pub(crate) async fn read_body(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Bytes, Held), Problem> {
    let timeout = state.ctx().config.http.body_read_timeout();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Problem::too_large(limit));
    }
    let budget = state.inner.body_budget.clone();
    match tokio::time::timeout(timeout, collect(Limited::new(body, limit), budget)).await {
        Err(_) => Err(Problem::timeout(timeout)),
        Ok(result) => result.map_err(|e| match e {
            Collect::Budget => Problem::unavailable(
                "the gateway is buffering as many request bodies as it may; retry",
            )
            .closing(),
            Collect::Body(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Problem::too_large(limit)
            }
            Collect::Body(e) => {
                Problem::bad_request(format!("the body could not be read: {e}")).closing()
            }
        }),
    }
}

enum Collect {
    Budget,
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// Budget units (KiB) held by a buffered body, given back when dropped:
/// a handler keeps it until it has answered.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Semaphore>,
    units: u32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.add_permits(self.units as usize);
    }
}

async fn collect(
    mut body: Limited<Body>,
    budget: Arc<Semaphore>,
) -> Result<(Bytes, Held), Collect> {
    let mut held = Held { budget, units: 0 };
    let mut parts: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Collect::Body)?.into_data() else {
            continue;
        };
        len += data.len();
        let need = u32::try_from(len.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX);
        if need > held.units {
            held.budget
                .try_acquire_many(need - held.units)
                .map_err(|_| Collect::Budget)?
                .forget();
            held.units = need;
        }
        parts.push(data);
    }
    let bytes = match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(len);
            for p in parts {
                all.extend_from_slice(&p);
            }
            all.freeze()
        }
    };
    Ok((bytes, held))
}

/// The body budget counts in these many bytes.
pub(crate) const BUDGET_UNIT: usize = 1024;
