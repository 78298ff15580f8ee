//! Engine.IO v4 (`socketio/engine.io-protocol`): the handshake, HTTP
//! long-polling, WebSocket, the polling → websocket upgrade, the heartbeat,
//! and binary messages — generic over the [`Protocol`] that runs on top
//! (Socket.IO, or a plain echo for the compliance suite).
//!
//! Memory per idle websocket connection is what [`Session`] holds: one
//! task, a hand-written state machine with the ping timer inside, the
//! protocol's per-connection state inline, no read or write buffer while
//! idle, and no per-connection channel (frames wait in an [`Outbox`] that
//! allocates only while frames wait).

mod config;
mod protocol;
mod server;
mod sid;
mod transport;

pub use config::Config;
pub use protocol::{Message, Protocol};
pub(crate) use sid::new_sid;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper::upgrade::OnUpgrade;
use server::{EioQuery, PollSession, Server, at_capacity, bad_request, outer_token};
use transport::polling::{finish, handle_post, handshake_polling, poll};
use transport::websocket::{Session, open_websocket};

use crate::cluster::{self, Locator};
use crate::outbox::CloseReason;
use crate::ws::{self};

/// The Engine.IO routes at `path` (e.g. `/socket.io`), with and without the
/// trailing slash, for any method (others than GET/POST answer 400, as the
/// reference server does).
pub fn router<P: Protocol>(protocol: P, config: Config, path: &str) -> Router {
    router_with(protocol, config, path, None)
}

/// [`router`] for one process of several: requests for sessions other
/// processes hold are forwarded to them (`locator` says where), so no
/// load-balancer affinity is needed.
pub fn router_with<P: Protocol>(protocol: P, config: Config, path: &str, locator: Option<Arc<dyn Locator>>) -> Router {
    let server = Arc::new(Server { protocol, config, sessions: Mutex::new(HashMap::new()), locator });
    let path = path.trim_end_matches('/');
    Router::new().route(path, any(on_request::<P>)).route(&format!("{path}/"), any(on_request::<P>)).with_state(server)
}

async fn on_request<P: Protocol>(
    State(srv): State<Arc<Server<P>>>,
    Query(q): Query<EioQuery>,
    req: Request,
) -> Response {
    if q.eio.as_deref() != Some("4") {
        return bad_request("Unsupported protocol version");
    }
    // A session another process holds: hand the request to it.
    if let (Some(locator), Some(sid)) = (&srv.locator, q.sid.as_deref())
        && let Some(node) = cluster::node_of(sid)
        && node != locator.node()
        && !req.headers().contains_key(cluster::FORWARDED)
    {
        return match locator.locate(node).await {
            Some(addr) => cluster::forward(addr, req).await,
            None => bad_request("Session ID unknown"),
        };
    }
    match *req.method() {
        Method::GET => on_get(srv, q, req).await,
        Method::POST => on_post(srv, q, req).await,
        _ => bad_request("Bad handshake method"),
    }
}

async fn on_get<P: Protocol>(srv: Arc<Server<P>>, q: EioQuery, mut req: Request) -> Response {
    let outer = outer_token(req.headers(), q.token.as_deref().filter(|_| srv.config.query_token));
    match (q.transport.as_deref(), q.sid) {
        (Some("websocket"), sid) => {
            let (accept, on_upgrade) = match (ws::handshake(req.headers()), req.extensions_mut().remove::<OnUpgrade>())
            {
                (Ok(accept), Some(on)) => (accept, on),
                _ => return bad_request("Bad request"),
            };
            // Nothing of the request outlives this handler (hyper's read buffer is freed).
            drop(req);
            // A sid this process does not hold (any more) is accepted and
            // closed at once, as the reference server does.
            if sid.is_none() && srv.protocol.at_capacity() {
                return at_capacity();
            }
            let existing = match sid {
                Some(sid) => match srv.session(&sid) {
                    Some(s) if !s.upgraded.load(Ordering::Acquire) && !s.lingering.load(Ordering::Acquire) => {
                        Some(Some((sid, s)))
                    }
                    _ => Some(None),
                },
                None => None,
            };
            // The task's lasting state is the session's alone: the upgrade
            // and the handshakes run boxed, so their (larger, short-lived)
            // state is freed once done and does not size the task.
            // (Captured boxed: a task keeps its captures' room for its whole life.)
            let opening = Box::pin(open_websocket(srv, on_upgrade, existing, outer));
            // Closing runs boxed too: the task's size is the live session's.
            let fut = async move {
                let Some(mut session) = opening.await else { return };
                let reason = std::future::poll_fn(|cx| Pin::new(&mut session).poll(cx)).await;
                Box::pin(close_session(session, reason)).await;
            };
            tokio::spawn(fut);
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                .body(axum::body::Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        (Some("polling"), None) if srv.protocol.at_capacity() => at_capacity(),
        (Some("polling"), None) => handshake_polling(&srv, outer),
        (Some("polling"), Some(sid)) => poll(&srv, &sid).await,
        _ => bad_request("Transport unknown"),
    }
}

/// The end of a websocket session. Work in flight runs to its end, not
/// cancelled with the connection: a connect the application has already
/// accepted is then told its disconnect, and an event is handled whole.
async fn close_session<P: Protocol>(session: Session<P>, reason: CloseReason) {
    let Session { srv, mut conn, handling, .. } = session;
    if let Some(work) = handling {
        let update = work.await;
        srv.protocol.apply(&mut conn, update);
    }
    if let Some(work) = srv.protocol.close(conn, reason) {
        work.await;
    }
}

async fn on_post<P: Protocol>(srv: Arc<Server<P>>, q: EioQuery, req: Request) -> Response {
    if q.transport.as_deref() != Some("polling") {
        return bad_request("Transport unknown");
    }
    let Some(sid) = q.sid else { return bad_request("Session ID unknown") };
    let Some(session) = srv.session(&sid).filter(|s| !s.lingering.load(Ordering::Acquire)) else {
        return bad_request("Session ID unknown");
    };
    if session.upgraded.load(Ordering::Acquire) {
        return bad_request("Bad request");
    }
    if session.timed_out() {
        finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
        return bad_request("Session ID unknown");
    }
    // One POST at a time per session, as the reference server enforces: a
    // second one while the first is read or handled ends the session
    // (else each would hold its body while waiting for the first).
    if session.posting.swap(true, Ordering::AcqRel) {
        finish(&srv, &sid, &session, CloseReason::ProtocolError, None).await;
        return bad_request("data request overlap from client");
    }
    let posting = Posting(Arc::clone(&session));
    let max = srv.config.max_payload;
    let Ok(body) = axum::body::to_bytes(req.into_body(), max).await else {
        // Too large, or the body broke off: the session cannot be trusted.
        finish(&srv, &sid, &session, CloseReason::ProtocolError, None).await;
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    };
    // The packets are handled in a task of their own: a client that gives
    // up on the request (hyper then drops this handler) does not cancel
    // work in flight, e.g. a connect the application has already accepted,
    // whose disconnect would otherwise never come.
    let handled = tokio::spawn(async move {
        let _posting = posting;
        handle_post(srv, sid, session, body).await
    });
    handled.await.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A POST of a polling session in flight; dropping it allows the next.
struct Posting<P: Protocol>(Arc<PollSession<P>>);

impl<P: Protocol> Drop for Posting<P> {
    fn drop(&mut self) {
        self.0.posting.store(false, Ordering::Release);
    }
}
