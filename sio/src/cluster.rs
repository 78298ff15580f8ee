//! Several processes, no sticky sessions: every sid names the process
//! (node) that holds the session, and a request for a session held
//! elsewhere — a long-poll GET, a POST, the websocket upgrade — is
//! forwarded there over HTTP/1.1 and its answer relayed back (for the
//! upgrade, the two connections are then spliced byte for byte).
//!
//! Costs (BENCHMARKS.md): a forwarded request opens a new connection to the
//! owner (no pool yet), about 0.1–0.15 ms and 150–230 µs of CPU more than a
//! direct one here; a websocket upgraded through another process stays
//! spliced through it for its life (two sockets and 2 × 2 KiB of buffers
//! there), so a balancer that keeps a client's upgrade on the process that
//! served its handshake is still cheaper — but no longer required.
//!
//! The application says where nodes are ([`Locator`]). A forwarded request
//! carries `x-sio-forwarded` and is never forwarded again. When the owner
//! cannot be found or reached, the client gets 400 "Session ID unknown" —
//! exactly what a client of a dead process gets — and reconnects.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::BoxFuture;

/// Marks a request one process forwarded to another.
pub(crate) const FORWARDED: HeaderName = HeaderName::from_static("x-sio-forwarded");

/// Bytes buffered per direction of a spliced websocket.
const SPLICE_BUF: usize = 2048;

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
pub(crate) async fn forward(addr: SocketAddr, mut req: Request) -> Response {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let upgrading = req.headers().contains_key(axum::http::header::UPGRADE);
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
    if upgrading && res.status() == StatusCode::SWITCHING_PROTOCOLS {
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
