//! Who is calling: `Authorization: Bearer <key>` names a tenant (or is an
//! admin key), or a Standard Webhooks signature with the tenant's secret
//! vouches for an ingestion request that names its tenant.

use std::time::{Duration, Instant};

use awfdrs_store::Tenant;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::{AppState, Problem, webhook};

/// How long a resolved key is trusted without asking the database again.
const KEY_TTL: Duration = Duration::from_secs(30);
const KEY_CACHE_CAPACITY: usize = 10_000;
/// The header that names the tenant of a signed webhook.
pub(crate) const TENANT_HEADER: &str = "x-awfdrs-tenant";

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
}

/// Resolved keys, by the SHA-256 of the key (the key itself is not kept).
#[derive(Debug)]
pub(crate) struct KeyCache(quick_cache::sync::Cache<[u8; 32], (Caller, Instant)>);

impl KeyCache {
    pub(crate) fn new() -> Self {
        Self(quick_cache::sync::Cache::new(KEY_CACHE_CAPACITY))
    }
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(Some)
        .ok_or_else(|| Problem::unauthorized("the Authorization header is not `Bearer <api key>`"))
}

/// The caller of an operations endpoint (tenant or admin key).
///
/// # Errors
/// 401 when the key is missing or unknown; 503 when the database is down.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let key = bearer(headers)?.ok_or_else(|| {
        Problem::unauthorized(
            "missing Authorization header; send `Authorization: Bearer <api key>`",
        )
    })?;
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
    let caller = found.ok_or_else(|| Problem::unauthorized("unknown API key"))?;
    state
        .inner
        .keys
        .0
        .insert(digest, (caller.clone(), Instant::now()));
    Ok(caller)
}

fn unavailable(e: &awfdrs_store::StoreError) -> Problem {
    tracing::warn!(error = %e, "api key lookup failed");
    Problem::unavailable("the database cannot be reached")
}

/// The tenant an ingestion request is for: its bearer key's, or the one
/// named by `X-Awfdrs-Tenant` whose webhook secret signed `body`.
///
/// # Errors
/// 401 when neither authenticates; 503 when the database is down.
pub(crate) async fn tenant(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Tenant, Problem> {
    if bearer(headers)?.is_some() {
        return match caller(state, headers).await? {
            Caller::Tenant(t) => Ok(t),
            Caller::Admin => Err(Problem::unauthorized(
                "admin keys cannot ingest events: use the tenant's key",
            )),
        };
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sig)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err(Problem::unauthorized(
            "send `Authorization: Bearer <api key>`, or sign with the Standard Webhooks headers",
        ));
    };
    let slug = header(TENANT_HEADER).ok_or_else(|| {
        Problem::unauthorized("a signed webhook must name its tenant in X-Awfdrs-Tenant")
    })?;
    let (tenant, secret) = state
        .ctx()
        .store
        .tenant_webhook_secret(slug)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| Problem::unauthorized("unknown tenant or no webhook secret set"))?;
    let now = chrono::Utc::now().timestamp();
    webhook::verify(&secret, id, ts, body, sig, now)
        .map_err(|why| Problem::unauthorized(format!("invalid webhook signature: {why}")))?;
    Ok(tenant)
}
