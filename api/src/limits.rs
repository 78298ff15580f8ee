//! New Socket.IO connections per client IP address.
//!
//! A handshake is a `/socket.io/` request without a `sid` (polling or
//! websocket); requests of an established session are never counted. Above
//! the rate the handshake gets 429 `{success:false, code:"TOO_MANY_CONNECTIONS"}`
//! and `gateway_connections_refused_total{reason="ip_rate"}` counts it.
//!
//! The address is the TCP peer's, or — behind `trusted_proxy_hops` proxies
//! (an ingress: 1) — the one that many entries from the right of
//! `X-Forwarded-For`, which the client cannot forge past a proxy that appends.
//! IPv6 addresses count by their /64 (one subscriber's network: a client
//! walking its own /64 is still one client); IPv4-mapped ones as IPv4.
//! Addresses that went quiet are forgotten every minute.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ErrorBody;

/// Per-IP handshake limits.
#[derive(Debug, Clone, Copy)]
pub struct IpLimit {
    /// Handshakes per IP per second (bursts of twice that).
    pub per_sec: NonZeroU32,
    /// Proxies in front that append to `X-Forwarded-For` (0: use the peer address).
    pub trusted_proxy_hops: usize,
}

/// The client's address as far as it can be trusted.
pub fn client_ip(req: &Request, hops: usize) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    forwarded.len().checked_sub(hops).and_then(|i| forwarded[i].parse().ok()).or(peer)
}

/// What one client is, for the limit: an IPv4 address, or an IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

fn is_handshake(req: &Request) -> bool {
    req.uri().path().starts_with("/socket.io")
        && !req.uri().query().unwrap_or("").split('&').any(|kv| kv.starts_with("sid="))
}

/// Wraps the Socket.IO routes with the per-IP handshake limit.
pub fn for_sockets(router: Router, limit: IpLimit) -> Router {
    let burst = limit.per_sec.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
    let limiter: Arc<DefaultKeyedRateLimiter<IpAddr>> =
        Arc::new(RateLimiter::keyed(Quota::per_second(limit.per_sec).allow_burst(burst)));
    let weak = Arc::downgrade(&limiter);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(l) = weak.upgrade() else { return };
            l.retain_recent();
        }
    });
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let limiter = Arc::clone(&limiter);
        async move {
            if is_handshake(&req)
                && let Some(ip) = client_ip(&req, limit.trusted_proxy_hops)
                && limiter.check_key(&client_key(ip)).is_err()
            {
                metrics::counter!("gateway_connections_refused_total", "reason" => "ip_rate").increment(1);
                return too_many();
            }
            next.run(req).await
        }
    }))
}

fn too_many() -> Response {
    let body = ErrorBody {
        success: false,
        message: "too many new connections from this address; retry in a few seconds".into(),
        code: "TOO_MANY_CONNECTIONS",
    };
    let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    res.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("2"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, xff: Option<&str>, peer: &str) -> Request {
        let mut r = Request::builder().uri(uri);
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        let mut r = r.body(axum::body::Body::empty()).expect("request");
        r.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().expect("addr")));
        r
    }

    #[test]
    fn the_address_comes_from_the_trusted_hop() {
        let r = req("/socket.io/?EIO=4", Some("6.6.6.6, 1.2.3.4"), "10.0.0.9:5000");
        assert_eq!(client_ip(&r, 0), Some("10.0.0.9".parse().expect("ip")));
        assert_eq!(client_ip(&r, 1), Some("1.2.3.4".parse().expect("ip")), "the entry the ingress appended");
        assert_eq!(client_ip(&r, 2), Some("6.6.6.6".parse().expect("ip")));
        assert_eq!(client_ip(&r, 5), Some("10.0.0.9".parse().expect("ip")), "too few entries: the peer");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| client_key(s.parse().expect("ip"));
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64");
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"), "another /64");
        assert_eq!(k("::ffff:10.0.0.1"), k("10.0.0.1"));
        assert_eq!(k("10.0.0.1"), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn only_handshakes_count() {
        assert!(is_handshake(&req("/socket.io/?EIO=4&transport=polling", None, "1.1.1.1:1")));
        assert!(!is_handshake(&req("/socket.io/?EIO=4&transport=polling&sid=abc", None, "1.1.1.1:1")));
        assert!(!is_handshake(&req("/api/messages/conversations", None, "1.1.1.1:1")));
    }
}
