//! Where webhooks may go: not into the private network they run in (SSRF).
//!
//! A URL is checked when an endpoint is saved (a clear 400 for the owner),
//! and again on every request: literal addresses by [`Guard::check`], names
//! by the HTTP client's resolver, which drops private answers — so a name
//! that resolved to a public address at registration and to `10.0.0.5` now
//! (DNS rebinding) still cannot reach the inside. Redirects are not
//! followed. `webhook_allow_private` (tests, on-premises receivers) lifts
//! the address rule, never the others.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Loopback, private, link-local, CGNAT, unspecified, multicast, broadcast,
/// documentation and unique-local addresses — anything not on the public internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return internal_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 == 0x64 && v6.segments()[1] == 0xff9b && v6.segments()[2] == 1) // local-use NAT64 64:ff9b:1::/48
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0, 0])
        }
    }
}

/// The IPv4 address an IPv6 one carries and reaches: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but still
/// routed by some stacks), and NAT64 (`64:ff9b::/96` and the local-use
/// `64:ff9b:1::/48`), whose gateway forwards to the embedded address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    let low = Ipv4Addr::new(a, b, c, d);
    let compatible = s[..6].iter().all(|x| *x == 0) && u32::from(low) > 1; // not :: or ::1
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
    (compatible || nat64).then_some(low)
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF 192.0.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240
}

/// The rules for webhook URLs and the HTTP client that follows them.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub allow_private: bool,
}

impl Guard {
    /// Parses and checks a URL (scheme, no credentials, a host; literal
    /// addresses and `localhost` against the address rule). Names are
    /// resolved too when `resolve` is set (registration), to refuse early.
    pub async fn check(&self, raw: &str, resolve: bool) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("url: not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url: must be http:// or https://".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url: must not carry credentials (sign requests with the endpoint's secret instead)".into());
        }
        if url.as_str().len() > 2048 {
            return Err("url: at most 2048 characters".into());
        }
        let host = url.host().ok_or("url: needs a host")?;
        if self.allow_private {
            return Ok(url);
        }
        let refused = || {
            Err("url: points to a private, loopback or link-local address; webhooks only go to public \
                 addresses (an operator can allow private ones with OMNIBIZ_WEBHOOK_ALLOW_PRIVATE)"
                .to_owned())
        };
        match host {
            url::Host::Ipv4(ip) if is_internal(IpAddr::V4(ip)) => return refused(),
            url::Host::Ipv6(ip) if is_internal(IpAddr::V6(ip)) => return refused(),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return refused();
                }
                if resolve {
                    let port = url.port_or_known_default().unwrap_or(443);
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((d.as_str(), port))
                        .await
                        .map_err(|e| format!("url: {d} does not resolve ({e})"))?
                        .collect();
                    if addrs.iter().any(|a| is_internal(a.ip())) {
                        return refused();
                    }
                }
            }
            _ => {}
        }
        Ok(url)
    }

    /// The client deliveries use: no redirects, timeouts, and (unless private
    /// targets are allowed) a resolver that drops internal addresses.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            // HTTP(S)_PROXY would send deliveries past the address rule (the proxy resolves and connects).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("OmniBiz-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !self.allow_private {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        b.build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "webhook HTTP client: falling back to defaults");
            reqwest::Client::new()
        })
    }
}

/// Resolves with the system resolver and keeps public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves only to private addresses").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            // NAT64 and IPv4-compatible forms of internal IPv4 addresses.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::7f00:1",
            "::10.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "172.32.0.1", "64:ff9b::1.1.1.1"] {
            assert!(!is_internal(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        let strict = Guard { allow_private: false };
        assert!(strict.check("http://127.0.0.1:9000/x", false).await.is_err());
        assert!(strict.check("http://[::1]/x", false).await.is_err());
        assert!(strict.check("http://169.254.169.254/latest/meta-data", false).await.is_err());
        assert!(strict.check("http://LOCALHOST./x", false).await.is_err());
        assert!(strict.check("https://user:pw@example.com/x", false).await.is_err());
        assert!(strict.check("ftp://example.com/x", false).await.is_err());
        assert!(strict.check("not a url", false).await.is_err());
        assert!(strict.check("https://example.com/hooks", false).await.is_ok());
        let open = Guard { allow_private: true };
        assert!(open.check("http://127.0.0.1:9000/x", false).await.is_ok());
        assert!(open.check("https://user:pw@example.com/x", false).await.is_err());
    }
}
