//! Outbound targets resolved and checked: a URL a tenant registers
//! (a workflow callback) passes [`awfdrs_domain::target::parse_target`], and
//! every address its host resolves to passes
//! [`awfdrs_domain::target::check_address`] unless
//! `notifications.allow_private_targets` is set. Deliveries check again at
//! connection time (the scheduler's resolver), so a name that later
//! resolves to a private address is still refused.

use std::net::SocketAddr;
use std::time::Duration;

use awfdrs_domain::target::{Target, check_address, parse_target};

/// How long a registration waits for its host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host:port` and checks every address.
///
/// # Errors
/// When it does not resolve (in time), resolves to nothing, or any address
/// is refused.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("the host {host:?} did not resolve within 5 s"))?
        .map_err(|e| format!("the host {host:?} does not resolve: {e}"))?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(format!("the host {host:?} resolves to no address"));
    }
    for a in &addrs {
        check_address(a.ip(), allow_private)?;
    }
    Ok(addrs)
}

/// Checks a target URL: its syntax, then its addresses (the literal one,
/// or every one its host resolves to).
///
/// # Errors
/// Why it is refused, in words fit for a `422`.
pub async fn check_target(raw: &str, allow_private: bool) -> Result<Target, String> {
    let target = parse_target(raw)?;
    match (target.ip, target.host.as_deref()) {
        (Some(ip), _) => check_address(ip, allow_private)?,
        (None, Some(host)) => {
            resolve_checked(host, target.port, allow_private).await?;
        }
        (None, None) => return Err("must name a host".to_owned()),
    }
    Ok(target)
}
