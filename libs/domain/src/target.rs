//! Outbound targets: the URLs AWFDRS POSTs to on a tenant's behalf
//! (workflow callbacks, notification channels), checked before they are
//! registered and again, address by address, before every delivery.
//!
//! A target is an absolute `http` or `https` URL without credentials,
//! control characters or a fragment, at most [`MAX_URL_LEN`] bytes. Unless
//! the configuration allows private targets, no address it resolves to may
//! be loopback, private, link-local, unspecified, shared (CGNAT), multicast
//! or otherwise reserved: a tenant must not reach AWFDRS's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The longest target URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// A target URL that passed the syntax checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as the client sends it.
    pub url: Url,
    /// The host name to resolve, or `None` when the host is an address.
    pub host: Option<String>,
    /// The host when it is an address literal.
    pub ip: Option<IpAddr>,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

/// Checks a target URL's syntax.
///
/// # Errors
/// Why it is refused, in words fit for a `422`.
pub fn parse_target(raw: &str) -> Result<Target, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} bytes"));
    }
    // The URL parser silently drops tabs and newlines: refuse them first.
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(format!("must not contain control characters (found {c:?})"));
    }
    if raw.contains(' ') {
        return Err("must not contain spaces".to_owned());
    }
    let url = Url::parse(raw).map_err(|e| format!("is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".to_owned());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".to_owned());
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "has no port".to_owned())?;
    let (host, ip) = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => (Some(d.to_owned()), None),
        Some(Host::Ipv4(a)) => (None, Some(IpAddr::V4(a))),
        Some(Host::Ipv6(a)) => (None, Some(IpAddr::V6(a))),
        _ => return Err("must name a host".to_owned()),
    };
    Ok(Target {
        url,
        host,
        ip,
        port,
    })
}

/// Whether `ip` is an address on the public internet (not loopback,
/// private, link-local, unspecified, shared, multicast, documentation,
/// benchmarking or reserved). IPv4 addresses embedded in IPv6 (mapped,
/// compatible, NAT64) are judged as the IPv4 address.
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => is_public_v6(a),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [o1, o2, o3, _] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || o1 == 0
        // Shared address space (CGNAT), 100.64.0.0/10.
        || (o1 == 100 && (o2 & 0xc0) == 64)
        // IETF protocol assignments, 192.0.0.0/24.
        || (o1 == 192 && o2 == 0 && o3 == 0)
        // Benchmarking, 198.18.0.0/15.
        || (o1 == 198 && (o2 & 0xfe) == 18)
        // Reserved, 240.0.0.0/4.
        || o1 >= 240)
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = a.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = a.segments();
    // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d).
    if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) || s[..6] == [0; 6] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return !a.is_unspecified() && !a.is_loopback() && is_public_v4(v4);
    }
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        // Unique local, fc00::/7.
        || (s[0] & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the old site-local, fec0::/10.
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

/// Checks that `ip` may be a target's address.
///
/// # Errors
/// Why not, naming the address.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(format!(
            "resolves to {ip}, a loopback, private or link-local address, which is not allowed"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_url_with_a_host_name_is_a_target() {
        let t = parse_target("https://hooks.example.com/retry?x=1").expect("valid");
        assert_eq!(t.host.as_deref(), Some("hooks.example.com"));
        assert_eq!(t.port, 443);
        assert_eq!(t.ip, None);
        let t = parse_target("http://10.0.0.1:8080/").expect("valid syntax");
        assert_eq!(t.ip, Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(t.port, 8080);
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (raw, why) in [
            ("", "empty"),
            ("ftp://example.com/", "http or https"),
            ("https://user:pw@example.com/", "user name"),
            ("https://user@example.com/", "user name"),
            ("https://example.com/\0", "control"),
            ("https://example.com/\r\nX-Evil: 1", "control"),
            ("https://exa\tmple.com/", "control"),
            ("https://example.com/a b", "spaces"),
            ("https://example.com/#frag", "fragment"),
            ("/relative", "absolute"),
            ("http://", "absolute"),
        ] {
            let err = parse_target(raw).expect_err(raw);
            assert!(err.contains(why), "{raw:?}: {err}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse_target(&long).expect_err("long").contains("at most"));
    }

    #[test]
    fn loopback_private_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert!(!is_public(ip), "{ip}");
            assert!(check_address(ip, false).is_err(), "{ip}");
            assert!(check_address(ip, true).is_ok(), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().expect(ip);
            assert!(is_public(ip), "{ip}");
        }
    }
}
