//! API key authentication: `Authorization: Bearer <key>` names the tenant.

use std::time::{Duration, Instant};

use awfdrs_store::Tenant;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use crate::{AppState, Problem};

/// How long a resolved key is trusted without asking the database again.
const KEY_TTL: Duration = Duration::from_secs(30);
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Resolved keys, by the SHA-256 of the key (the key itself is not kept).
#[derive(Debug)]
pub(crate) struct KeyCache(quick_cache::sync::Cache<[u8; 32], (Tenant, Instant)>);

impl KeyCache {
    pub(crate) fn new() -> Self {
        Self(quick_cache::sync::Cache::new(KEY_CACHE_CAPACITY))
    }
}

/// The tenant the request's bearer key names.
///
/// # Errors
/// 401 when the key is missing or unknown; 503 when the database is down.
pub(crate) async fn tenant(state: &AppState, headers: &HeaderMap) -> Result<Tenant, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized(
            "missing Authorization header; send `Authorization: Bearer <api key>`",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized("the Authorization header is not `Bearer <api key>`")
        })?;
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if let Some((tenant, at)) = state.inner.keys.0.get(&digest)
        && at.elapsed() < KEY_TTL
    {
        return Ok(tenant);
    }
    match state.ctx().store.tenant_by_api_key(key).await {
        Ok(Some(tenant)) => {
            state
                .inner
                .keys
                .0
                .insert(digest, (tenant.clone(), Instant::now()));
            Ok(tenant)
        }
        Ok(None) => Err(Problem::unauthorized("unknown API key")),
        Err(e) => {
            tracing::warn!(error = %e, "api key lookup failed");
            Err(Problem::unavailable("the database cannot be reached"))
        }
    }
}
