//! Several processes, no sticky sessions: every sid names the process
//! (node) that holds the session, and a request for a session held
//! elsewhere — a long-poll GET, a POST, the websocket upgrade — is
//! forwarded there over HTTP/1.1 and its answer relayed back (for the
//! upgrade, the two connections are then spliced byte for byte).
//!
//! Forwarded GETs and POSTs travel on keep-alive connections from a pool
//! per peer (hyper's pooled client): a connection is reused as soon as its
//! answer is read, at most [`IDLE_PER_PEER`] wait idle per peer, and a
//! request that finds none idle opens a new one — so a forwarded long-poll
//! GET, which holds its connection for up to a ping interval, never makes
//! another forwarded request wait behind it. The upgrade opens a connection
//! of its own (it is spliced for the websocket's life, never reused).
//!
//! Costs (BENCHMARKS.md, "Forwarding on pooled connections"): what a forwarded poll
//! adds over a direct one in latency and CPU, before and after the pool; a
//! websocket upgraded through another process stays spliced through it for
//! its life (two sockets and 2 × 2 KiB of buffers there), so a balancer
//! that keeps a client's upgrade on the process that served its handshake
//! is still cheaper — but not required.
//!
//! The application says where nodes are ([`Locator`]). A forwarded request
//! carries `x-sio-forwarded` and is never forwarded again. When the owner
//! cannot be found or reached, the client gets 400 "Session ID unknown" —
//! exactly what a client of a dead process gets — and reconnects.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::BoxFuture;

/// Marks a request one process forwarded to another.
pub(crate) const FORWARDED: HeaderName = HeaderName::from_static("x-sio-forwarded");

/// Bytes buffered per direction of a spliced websocket.
const SPLICE_BUF: usize = 2048;

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle keep-alive connections kept per peer process.
pub(crate) const IDLE_PER_PEER: usize = 16;

/// An idle pooled connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The process's pool of connections to its peers.
fn pool() -> &'static Client<HttpConnector, Body> {
    static POOL: OnceLock<Client<HttpConnector, Body>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(IDLE_PER_PEER)
            .build(http)
    })
}

/// Where the processes of a cluster are.
pub trait Locator: Send + Sync + 'static {
    /// This process's node name: `[a-z0-9-]`, put in front of every sid it makes.
    fn node(&self) -> &str;
    /// The address (`host:port` of its HTTP listener) of the process named `node`.
    fn locate(&self, node: &str) -> BoxFuture<Option<SocketAddr>>;
}

/// The node a sid names (`<node>.<random>`), if any.
pub(crate) fn node_of(sid: &str) -> Option<&str> {
    sid.split_once('.').map(|(n, _)| n).filter(|n| !n.is_empty())
}

fn unknown() -> Response {
    let body = serde_json::json!({"code": 1, "message": "Session ID unknown"});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Sends `req` to the process at `addr` and relays its answer; for a
/// websocket upgrade, splices the client's connection to the owner's.
pub(crate) async fn forward(addr: SocketAddr, req: Request) -> Response {
    if req.headers().contains_key(axum::http::header::UPGRADE) {
        return forward_upgrade(addr, req).await;
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(FORWARDED, HeaderValue::from_static("1"));
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(uri) = format!("http://{addr}{pq}").parse() else { return unknown() };
    parts.uri = uri;
    match pool().request(Request::from_parts(parts, body)).await {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            tracing::debug!(%addr, error = %e, "the owner of a session is unreachable");
            unknown()
        }
    }
}

/// Removes the headers that describe one connection (RFC 9110 §7.6.1),
/// and those `Connection` names: the client's `Connection: close` is about
/// its connection to us, not ours to the owner, which stays in the pool.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
        headers.remove(name);
    }
}

/// The websocket upgrade: a connection of its own, spliced once upgraded.
async fn forward_upgrade(addr: SocketAddr, mut req: Request) -> Response {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        _ => {
            tracing::debug!(%addr, "the owner of a session is unreachable");
            return unknown();
        }
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await else {
        return unknown();
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(FORWARDED, HeaderValue::from_static("1"));
    // Origin-form request target: the path and query only.
    if let Some(pq) = parts.uri.path_and_query().cloned() {
        parts.uri = pq.as_str().parse().unwrap_or(parts.uri);
    }
    let out = Request::from_parts(parts, body);
    let mut res = match sender.send_request(out).await {
        Ok(r) => r,
        Err(_) => return unknown(),
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        let owner_upgrade = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            if let (Ok(client), Ok(owner)) = tokio::join!(client_upgrade, owner_upgrade) {
                let (mut client, mut owner) = (TokioIo::new(client), TokioIo::new(owner));
                // Small buffers: a spliced websocket lives as long as the client.
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut owner, SPLICE_BUF, SPLICE_BUF).await;
            }
        });
    }
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, Body::new(body))
}
