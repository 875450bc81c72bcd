//! Which callback URLs Juhe will send to. A URL must be http(s) with a host; unless
//! `webhooks.allow_private_targets` is set, it must not reach loopback, private, link-local
//! or otherwise non-public addresses — checked when the URL is registered and again at every
//! delivery (a name can resolve differently later), by the resolver the HTTP client uses,
//! so the address checked is the address connected to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Longest callback URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Whether an address is one a public callback may not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // 64:ff9b::/96 NAT64 of a private v4 address
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]
                    && private_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)))
                // 2001:db8::/32 documentation
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // 192.0.0.0/24 IETF protocol assignments, 198.18.0.0/15 benchmarking, 240/4 reserved
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240
}

/// A checked callback URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
}

/// Checks the form of a callback URL (not where it resolves).
pub fn parse(url: &str) -> Result<Target, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("must not be empty".into());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    Ok(Target { url: parsed })
}

/// The literal address of a URL's host, when it is one.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    }
}

/// Refuses a URL whose host is, or resolves to, a non-public address (at registration).
/// A name that does not resolve now is accepted: it is checked again at every delivery.
pub async fn check_public(t: &Target) -> Result<(), String> {
    if let Some(ip) = literal_ip(&t.url) {
        return refuse(ip);
    }
    let host = t.url.host_str().unwrap_or_default().to_owned();
    let port = t.url.port_or_known_default().unwrap_or(80);
    if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
        for a in addrs {
            refuse(a.ip())?;
        }
    }
    Ok(())
}

fn refuse(ip: IpAddr) -> Result<(), String> {
    if is_private(ip) {
        return Err(format!(
            "reaches {ip}, a loopback, private or link-local address; Juhe does not send callbacks there unless webhooks.allow_private_targets is true"
        ));
    }
    Ok(())
}

/// Refuses a literal non-public address at delivery time (names go through [`PublicOnly`]).
pub fn check_literal(url: &reqwest::Url) -> Result<(), String> {
    match literal_ip(url) {
        Some(ip) => refuse(ip),
        None => Ok(()),
    }
}

/// The HTTP client's resolver when private targets are not allowed: resolves as the system
/// does, then drops every non-public address; a name with none left fails to connect.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback, private or link-local addresses (webhooks.allow_private_targets is false)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

pub fn public_only() -> Arc<PublicOnly> {
    Arc::new(PublicOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_link_local_and_mapped_addresses_are_private() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_callback_urls() {
        assert!(parse("https://crm.example.com/hook").is_ok());
        assert!(parse("http://1.2.3.4:8080/x").is_ok());
        assert!(parse("ftp://example.com/").is_err());
        assert!(parse("example.com/hook").is_err());
        assert!(parse("").is_err());
        assert!(parse(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[tokio::test]
    async fn a_literal_or_resolved_loopback_is_refused_at_registration() {
        assert!(check_public(&parse("http://127.0.0.1:9/x").unwrap())
            .await
            .is_err());
        assert!(check_public(&parse("http://[::1]:9/x").unwrap())
            .await
            .is_err());
        assert!(check_public(&parse("http://localhost:9/x").unwrap())
            .await
            .is_err());
        assert!(check_public(&parse("http://8.8.8.8/x").unwrap())
            .await
            .is_ok());
    }
}
