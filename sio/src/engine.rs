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

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use tokio::time::Instant;

use crate::cluster::{self, Locator};
use crate::outbox::{CloseReason, Frame, Outbox};
use crate::ws::{self, CLOSE_GOING_AWAY, CLOSE_NORMAL, Incoming, WebSocket};

/// Engine.IO record separator between packets in a polling payload.
const SEPARATOR: char = '\u{1e}';
/// How long a closing connection may take to accept its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Settings of a server.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest accepted message (and polling POST body), in bytes.
    pub max_payload: usize,
    /// Frames queued per connection before it counts as slow.
    pub max_buffer: usize,
    /// Time a client has to complete the protocol's handshake (Socket.IO
    /// CONNECT), the application's accepting it included; 45 s as in the
    /// reference server, so that a connect waiting on a busy database
    /// during a reconnect storm is not cut and retried (which adds load).
    pub connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 128 * 1024,
            max_buffer: 256,
            connect_timeout: Duration::from_secs(45),
        }
    }
}

/// An Engine.IO message from the client (the MESSAGE type digit removed).
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(Vec<u8>),
}

/// Work a protocol runs for one message before the next is read.
pub type Work<U> = Pin<Box<dyn Future<Output = U> + Send>>;

/// What runs on top of Engine.IO.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state, kept inline in the connection's task.
    type Conn: Send + 'static;
    /// What a message's work hands back to the state when it finishes.
    type Update: Send + 'static;
    /// A new connection; `token` is a bearer token from the `Authorization`
    /// header or the `token` query parameter, when one was given.
    fn open(&self, outbox: &Arc<Outbox>, token: Option<String>, config: &Config) -> Self::Conn;
    /// One message. `Err` is a protocol error (the connection is closed);
    /// `Ok(Some(work))` runs before the next message is read, and its output
    /// goes to [`Protocol::apply`].
    fn message(
        &self,
        conn: &mut Self::Conn,
        outbox: &Arc<Outbox>,
        msg: Message<'_>,
    ) -> Result<Option<Work<Self::Update>>, &'static str>;
    fn apply(&self, conn: &mut Self::Conn, update: Self::Update);
    /// The time by which the protocol's own handshake must be done, while it is not.
    fn deadline(&self, conn: &Self::Conn) -> Option<Instant>;
    /// The handshake's [`Protocol::deadline`] passed: the connection ends
    /// with [`CloseReason::Timeout`] (then [`Protocol::close`] runs).
    fn expired(&self, _conn: &Self::Conn) {}
    /// The connection ended; work to run (telling the application).
    fn close(&self, conn: Self::Conn, reason: CloseReason) -> Option<Work<()>>;
}

#[derive(Debug, Deserialize)]
struct EioQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

struct PollSession<P: Protocol> {
    outbox: Arc<Outbox>,
    /// The protocol's state. Locked while a POST is handled (packets stay in
    /// order); taken by the websocket upgrade.
    conn: tokio::sync::Mutex<Option<P::Conn>>,
    /// A GET is waiting (at most one at a time).
    polling: AtomicBool,
    /// Moved to websocket: polling requests are refused from now on.
    upgraded: AtomicBool,
    /// A websocket probe succeeded: GETs answer a noop at once until the
    /// upgrade completes (or is abandoned).
    upgrading: AtomicBool,
    /// While a ping is unanswered: when the session times out.
    pong_by: Mutex<Option<Instant>>,
}

impl<P: Protocol> PollSession<P> {
    fn pong_by(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.pong_by.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ping went unanswered past its timeout (whether or not the
    /// supervisor has noticed yet).
    fn timed_out(&self) -> bool {
        self.pong_by().is_some_and(|d| Instant::now() >= d)
    }
}

struct Server<P: Protocol> {
    protocol: P,
    config: Config,
    sessions: Mutex<HashMap<String, Arc<PollSession<P>>>>,
    /// With several processes: where the others are (see [`crate::cluster`]).
    locator: Option<Arc<dyn Locator>>,
}

impl<P: Protocol> Server<P> {
    /// A fresh sid, naming this process when it is part of a cluster.
    fn new_sid(&self) -> String {
        match &self.locator {
            Some(l) => format!("{}.{}", l.node(), new_sid()),
            None => new_sid(),
        }
    }

    fn session(&self, sid: &str) -> Option<Arc<PollSession<P>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(sid).cloned()
    }

    fn forget(&self, sid: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(sid);
    }
}

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

fn bad_request(msg: &'static str) -> Response {
    // The reference server answers protocol errors with a JSON body like this.
    let code = match msg {
        "Transport unknown" => 0,
        "Session ID unknown" => 1,
        "Bad handshake method" => 2,
        _ => 3,
    };
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": code, "message": msg}))).into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

pub(crate) fn new_sid() -> String {
    rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")).collect()
}

fn open_packet(sid: &str, upgrades: bool, c: &Config) -> String {
    let open = serde_json::json!({
        "sid": sid,
        "upgrades": if upgrades { vec!["websocket"] } else { vec![] },
        "pingInterval": c.ping_interval.as_millis() as u64,
        "pingTimeout": c.ping_timeout.as_millis() as u64,
        "maxPayload": c.max_payload,
    });
    format!("0{open}")
}

/// The token a client presented outside the protocol: `Authorization`
/// header or `?token=`. Copied out so nothing of the request is kept.
fn outer_token(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    if let Some(h) = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok())
        && let Some((scheme, t)) = h.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(t.trim().to_owned());
    }
    query_token.map(str::to_owned)
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
    let outer = outer_token(req.headers(), q.token.as_deref());
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
            let existing = match sid {
                Some(sid) => match srv.session(&sid) {
                    Some(s) if !s.upgraded.load(Ordering::Acquire) => Some(Some((sid, s))),
                    _ => Some(None),
                },
                None => None,
            };
            // The task's lasting state is the session's alone: the upgrade
            // and the handshakes run boxed, so their (larger, short-lived)
            // state is freed once done and does not size the task.
            // (Captured boxed: a task keeps its captures' room for its whole life.)
            let opening = Box::pin(open_websocket(srv, on_upgrade, existing, outer));
            let fut = async move {
                let Some(mut session) = opening.await else { return };
                let reason = std::future::poll_fn(|cx| Pin::new(&mut session).poll(cx)).await;
                let Session { srv, mut conn, handling, .. } = session;
                // Work in flight runs to its end, not cancelled with the
                // connection: a connect the application has already accepted
                // is then told its disconnect, and an event is handled whole.
                if let Some(work) = handling {
                    let update = work.await;
                    srv.protocol.apply(&mut conn, update);
                }
                if let Some(work) = srv.protocol.close(conn, reason) {
                    work.await;
                }
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
        (Some("polling"), None) => handshake_polling(&srv, outer),
        (Some("polling"), Some(sid)) => poll(&srv, &sid).await,
        _ => bad_request("Transport unknown"),
    }
}

async fn on_post<P: Protocol>(srv: Arc<Server<P>>, q: EioQuery, req: Request) -> Response {
    if q.transport.as_deref() != Some("polling") {
        return bad_request("Transport unknown");
    }
    let Some(sid) = q.sid else { return bad_request("Session ID unknown") };
    let Some(session) = srv.session(&sid) else { return bad_request("Session ID unknown") };
    if session.upgraded.load(Ordering::Acquire) {
        return bad_request("Bad request");
    }
    if session.timed_out() {
        finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
        return bad_request("Session ID unknown");
    }
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
    let handled = tokio::spawn(handle_post(srv, sid, session, body));
    handled.await.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The rest of a POST once its body is read: its packets, in order.
async fn handle_post<P: Protocol>(
    srv: Arc<Server<P>>,
    sid: String,
    session: Arc<PollSession<P>>,
    body: Bytes,
) -> Response {
    let mut guard = session.conn.lock().await;
    let Some(conn) = guard.as_mut() else { return bad_request("Bad request") };
    let outcome = match std::str::from_utf8(&body) {
        Ok(body) => handle_payload(&srv, &session, conn, body).await,
        Err(_) => Err(CloseReason::ProtocolError),
    };
    match outcome {
        Ok(()) => text("ok".into()),
        Err(reason) => {
            let conn = guard.take();
            drop(guard);
            finish(&srv, &sid, &session, reason, conn).await;
            if reason == CloseReason::ClientClosed { text("ok".into()) } else { bad_request("Bad request") }
        }
    }
}

/// Handles the packets of one POST, in order; `Err` closes the session.
async fn handle_payload<P: Protocol>(
    srv: &Arc<Server<P>>,
    session: &Arc<PollSession<P>>,
    conn: &mut P::Conn,
    body: &str,
) -> Result<(), CloseReason> {
    for packet in body.split(SEPARATOR) {
        let msg = match packet.split_at_checked(1) {
            Some(("1", _)) => return Err(CloseReason::ClientClosed),
            Some(("3", _)) => {
                *session.pong_by() = None;
                continue;
            }
            Some(("6", _)) => continue,
            Some(("4", rest)) => Message::Text(rest),
            Some(("b", b64)) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => Message::Binary(bytes),
                Err(_) => return Err(CloseReason::ProtocolError),
            },
            _ => return Err(CloseReason::ProtocolError),
        };
        match srv.protocol.message(conn, &session.outbox, msg) {
            Ok(None) => {}
            Ok(Some(work)) => {
                let update = work.await;
                srv.protocol.apply(conn, update);
            }
            Err(reason) => {
                tracing::debug!(reason, "closing a polling session on a malformed packet");
                return Err(CloseReason::ProtocolError);
            }
        }
    }
    Ok(())
}

fn handshake_polling<P: Protocol>(srv: &Arc<Server<P>>, outer_token: Option<String>) -> Response {
    let sid = srv.new_sid();
    let outbox = Arc::new(Outbox::new(srv.config.max_buffer));
    let conn = srv.protocol.open(&outbox, outer_token, &srv.config);
    let session = Arc::new(PollSession {
        outbox,
        conn: tokio::sync::Mutex::new(Some(conn)),
        polling: AtomicBool::new(false),
        upgraded: AtomicBool::new(false),
        upgrading: AtomicBool::new(false),
        pong_by: Mutex::new(None),
    });
    srv.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(sid.clone(), Arc::clone(&session));
    tokio::spawn(supervise_polling(Arc::clone(srv), sid.clone(), session));
    text(open_packet(&sid, true, &srv.config))
}

/// The heartbeat of a polling session: a ping every interval, a pong within
/// the timeout; also ends it when the protocol's handshake is overdue or the
/// application closed it.
async fn supervise_polling<P: Protocol>(srv: Arc<Server<P>>, sid: String, session: Arc<PollSession<P>>) {
    let c = srv.config;
    let mut next_ping = Instant::now() + c.ping_interval;
    loop {
        let deadline = match session.conn.try_lock() {
            Ok(g) => g.as_ref().and_then(|conn| srv.protocol.deadline(conn)),
            Err(_) => None,
        };
        let wake = deadline.map_or(next_ping, |d| d.min(next_ping));
        tokio::time::sleep_until(wake).await;
        if session.upgraded.load(Ordering::Acquire) {
            return; // the websocket task owns the connection now
        }
        if session.outbox.is_closing() {
            let (_, reason) = session.outbox.drain();
            finish(&srv, &sid, &session, reason.unwrap_or(CloseReason::ServerShutdown), None).await;
            return;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let overdue = match session.conn.try_lock() {
                Ok(g) => g.as_ref().and_then(|conn| srv.protocol.deadline(conn)).is_some_and(|d| now >= d),
                Err(_) => {
                    // A POST is being handled (maybe the CONNECT itself): look
                    // again shortly rather than spin on a deadline in the past.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if overdue {
                if let Ok(g) = session.conn.try_lock()
                    && let Some(conn) = g.as_ref()
                {
                    srv.protocol.expired(conn);
                }
                finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
                return;
            }
        }
        if now < next_ping {
            continue;
        }
        let pong_by = next_ping + c.ping_timeout;
        *session.pong_by() = Some(pong_by);
        if session.outbox.push(Frame::Text(Bytes::from_static(b"2"))).is_err() {
            finish(&srv, &sid, &session, CloseReason::SlowClient, None).await;
            return;
        }
        tokio::time::sleep_until(pong_by).await;
        if session.upgraded.load(Ordering::Acquire) {
            return;
        }
        if session.timed_out() {
            finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
            return;
        }
        next_ping += c.ping_interval;
    }
}

/// Ends a polling session: forgets it, closes its outbox (a waiting GET
/// answers) and tells the protocol. `conn` when the caller already took it.
async fn finish<P: Protocol>(
    srv: &Arc<Server<P>>,
    sid: &str,
    session: &Arc<PollSession<P>>,
    reason: CloseReason,
    conn: Option<P::Conn>,
) {
    srv.forget(sid);
    session.outbox.close(reason);
    let conn = match conn {
        Some(c) => Some(c),
        None => session.conn.lock().await.take(),
    };
    if let Some(conn) = conn
        && let Some(work) = srv.protocol.close(conn, reason)
    {
        work.await;
    }
}

/// A long-poll GET: waits for frames and returns them (a ping comes every
/// interval, so it never waits much longer than that).
async fn poll<P: Protocol>(srv: &Arc<Server<P>>, sid: &str) -> Response {
    let Some(session) = srv.session(sid) else { return bad_request("Session ID unknown") };
    if session.upgraded.load(Ordering::Acquire) {
        return bad_request("Bad request");
    }
    if session.timed_out() {
        finish(srv, sid, &session, CloseReason::Timeout, None).await;
        return bad_request("Session ID unknown");
    }
    if session.polling.swap(true, Ordering::AcqRel) {
        // Two GETs at once: the client is confused; end the session (the
        // waiting GET answers with a CLOSE packet).
        finish(srv, sid, &session, CloseReason::ProtocolError, None).await;
        return bad_request("Bad request");
    }
    let c = srv.config;
    let deadline = Instant::now() + c.ping_interval + c.ping_timeout;
    let (frames, closing) = loop {
        if session.upgrading.load(Ordering::Acquire) || session.upgraded.load(Ordering::Acquire) {
            // Superseded by the websocket: a noop; what is queued goes there.
            break (VecDeque::new(), None);
        }
        let (frames, closing) = session.outbox.drain();
        if !frames.is_empty() || closing.is_some() {
            break (frames, closing);
        }
        // Register for a wake-up first, then look at the flags again: an
        // upgrade that sets its flag and wakes in between is not missed.
        let ready = std::future::poll_fn(|cx| {
            let r = session.outbox.poll_ready(cx);
            if session.upgrading.load(Ordering::SeqCst) || session.upgraded.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            r
        });
        if tokio::time::timeout_at(deadline, ready).await.is_err() {
            break (frames, None);
        }
    };
    session.polling.store(false, Ordering::Release);
    text(polling_payload(&frames, closing))
}

/// Frames as one polling payload: text packets as they are, binary ones as
/// `b` + base64, separated by the record separator; a CLOSE packet when the
/// server ends the session (a noop when the client did, or when empty).
fn polling_payload(frames: &VecDeque<Frame>, closing: Option<CloseReason>) -> String {
    let mut body = String::new();
    for f in frames {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        match f {
            Frame::Text(t) => body.push_str(std::str::from_utf8(t).unwrap_or_default()),
            Frame::Binary(b) => {
                body.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut body);
            }
        }
    }
    match closing {
        Some(CloseReason::ClientClosed) | None if body.is_empty() => body.push('6'),
        Some(CloseReason::ClientClosed) | None => {}
        Some(_) => {
            if !body.is_empty() {
                body.push(SEPARATOR);
            }
            body.push('1');
        }
    }
    body
}

// ---------------------------------------------------------------------------
// Websocket connections.

/// The next text message before `deadline`, answering pings on the way;
/// `None` when the client closed, broke the protocol or took too long.
async fn next_text(ws: &mut WebSocket, deadline: Instant) -> Option<String> {
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await.ok()?? {
            Incoming::Text(t) => return Some(t),
            Incoming::Ping(p) => {
                let _ = ws.pong(&p).await;
            }
            Incoming::Binary(_) | Incoming::Close => return None,
        }
    }
}

/// A websocket session from an upgrade: a new one, or the upgrade of a
/// polling session (`existing`); `Some(None)` is a sid this process does not
/// hold, which is closed at once as the reference server does.
async fn open_websocket<P: Protocol>(
    srv: Arc<Server<P>>,
    on_upgrade: OnUpgrade,
    existing: Option<Option<(String, Arc<PollSession<P>>)>>,
    outer: Option<String>,
) -> Option<Session<P>> {
    let io = on_upgrade.await.ok()?;
    let socket = WebSocket::new(io, srv.config.max_payload);
    let (socket, outbox, conn) = match existing {
        None => start_websocket(&srv, socket, outer).await?,
        Some(Some((sid, session))) => start_upgrade(&srv, socket, sid, session).await?,
        Some(None) => {
            let mut socket = socket;
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(CLOSE_NORMAL)).await;
            return None;
        }
    };
    Some(Session::new(srv, socket, outbox, conn))
}

/// A connection that starts on websocket: the open packet.
async fn start_websocket<P: Protocol>(
    srv: &Arc<Server<P>>,
    mut ws: WebSocket,
    outer_token: Option<String>,
) -> Option<(WebSocket, Arc<Outbox>, P::Conn)> {
    ws.send_text(open_packet(&srv.new_sid(), false, &srv.config).as_bytes()).await.ok()?;
    let outbox = Arc::new(Outbox::new(srv.config.max_buffer));
    let conn = srv.protocol.open(&outbox, outer_token, &srv.config);
    Some((ws, outbox, conn))
}

/// A polling session moving to websocket (the "probe" dance of the spec).
/// `None` when the upgrade is abandoned (the polling session carries on).
async fn start_upgrade<P: Protocol>(
    srv: &Arc<Server<P>>,
    mut ws: WebSocket,
    sid: String,
    session: Arc<PollSession<P>>,
) -> Option<(WebSocket, Arc<Outbox>, P::Conn)> {
    let deadline = Instant::now() + srv.config.ping_timeout.max(Duration::from_secs(1));
    let probed = async {
        loop {
            match next_text(&mut ws, deadline).await?.as_str() {
                "2probe" => {
                    ws.send_text(b"3probe").await.ok()?;
                    // A pending poll returns a noop, so the client can send the upgrade packet.
                    session.upgrading.store(true, Ordering::SeqCst);
                    session.outbox.wake();
                }
                "5" => return Some(()),
                _ => return None,
            }
        }
    };
    if probed.await.is_none() {
        session.upgrading.store(false, Ordering::Release);
        return None;
    }
    // A POST may still be in flight: let it finish first, then take the state.
    let conn = session.conn.lock().await.take();
    session.upgraded.store(true, Ordering::SeqCst);
    srv.forget(&sid);
    // A GET may still be waiting: wake it so it returns (the client ignores it).
    session.outbox.wake();
    conn.map(|c| (ws, Arc::clone(&session.outbox), c))
}

/// A websocket connection's one task, written as a state machine by hand:
/// these fields are all an idle connection holds (an `async fn` with a
/// `select!` would keep every branch's future, ≈1 KB more per socket).
///
/// Each poll: write what is queued (the outbox, then a pong), run the work
/// of the message being handled, read and dispatch messages (one at a time,
/// in order), and keep the heartbeat. Once it decides to end, it sends a
/// close frame when there is a reason to give, and resolves.
struct Session<P: Protocol> {
    srv: Arc<Server<P>>,
    outbox: Arc<Outbox>,
    ws: WebSocket,
    conn: P::Conn,
    /// Runs to the next ping (or the handshake deadline), or to the pong
    /// deadline while one is due.
    timer: Pin<Box<tokio::time::Sleep>>,
    next_ping: Instant,
    pong_due: bool,
    /// Why the connection ends, once it does.
    why: CloseReason,
    /// The work of the message being handled; reading waits until it is done.
    handling: Option<Work<P::Update>>,
    /// Frames taken from the outbox and not yet fully written, and how far.
    out: VecDeque<Frame>,
    cursor: (usize, usize),
    /// A pong owed to a websocket ping.
    pong: Option<Vec<u8>>,
    /// Close (with this code) once everything queued is written.
    closing: Option<u16>,
    /// Ending: the close frame being written (`cursor` tracks it).
    ending: Option<u16>,
}

/// What a poll step decided.
enum Step {
    /// Something happened: go round again.
    Progress,
    /// Waiting (every source registered the task's waker).
    Idle,
    /// The connection is over; close with this code, if any.
    End(Option<u16>),
}

impl<P: Protocol> Session<P> {
    fn new(srv: Arc<Server<P>>, ws: WebSocket, outbox: Arc<Outbox>, conn: P::Conn) -> Self {
        let next_ping = Instant::now() + srv.config.ping_interval;
        let first = srv.protocol.deadline(&conn).map_or(next_ping, |d| d.min(next_ping));
        Self {
            srv,
            outbox,
            ws,
            conn,
            timer: Box::pin(tokio::time::sleep_until(first)),
            next_ping,
            pong_due: false,
            why: CloseReason::ClientClosed,
            handling: None,
            out: VecDeque::new(),
            cursor: (0, 0),
            pong: None,
            closing: None,
            ending: None,
        }
    }

    fn end(&mut self, why: CloseReason, code: Option<u16>) -> Step {
        self.why = why;
        Step::End(code)
    }

    /// Writes queued frames and refills from the outbox until either is dry.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            if !self.out.is_empty() {
                let frames = self.out.make_contiguous();
                match self.ws.poll_write(cx, frames, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.out = VecDeque::new(); // hold no buffer while idle
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return self.end(CloseReason::ClientClosed, None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if let Some(p) = &self.pong {
                match self.ws.poll_write_pong(cx, p, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.pong = None;
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return self.end(CloseReason::ClientClosed, None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if self.closing.is_some() {
                return Step::End(self.closing);
            }
            match self.outbox.poll_drain(cx) {
                Poll::Ready((frames, closing)) => {
                    self.out = frames;
                    if let Some(reason) = closing {
                        // Close the transport, not the Socket.IO session: clients retry.
                        self.why = reason;
                        self.closing = Some(CLOSE_GOING_AWAY);
                    }
                }
                Poll::Pending => return Step::Idle,
            }
        }
    }

    /// The socket takes no more for now. A client the application dropped
    /// as too slow is not waited for (its frames would never drain);
    /// otherwise wait for the socket, or for a close.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Step {
        match self.outbox.poll_closing(cx) {
            Some(CloseReason::SlowClient) => self.end(CloseReason::SlowClient, None),
            _ => Step::Idle,
        }
    }

    /// Runs the work of the message being handled; its replies land in the outbox.
    fn poll_handling(&mut self, cx: &mut Context<'_>) -> Step {
        match self.handling.as_mut().map(|h| h.as_mut().poll(cx)) {
            Some(Poll::Ready(update)) => {
                self.handling = None;
                self.srv.protocol.apply(&mut self.conn, update);
                self.rearm();
                Step::Progress
            }
            _ => Step::Idle,
        }
    }

    /// Reads one message and acts on it.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Step {
        if self.handling.is_some() || self.closing.is_some() {
            return Step::Idle;
        }
        let msg = match self.ws.poll_recv(cx) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(None) => return self.end(CloseReason::ClientClosed, None),
            Poll::Ready(Some(Err(v))) => return self.end(CloseReason::ProtocolError, Some(v.code)),
            Poll::Ready(Some(Ok(Incoming::Close))) => return self.end(CloseReason::ClientClosed, Some(CLOSE_NORMAL)),
            Poll::Ready(Some(Ok(Incoming::Ping(p)))) => {
                self.pong = Some(p);
                return Step::Progress;
            }
            Poll::Ready(Some(Ok(m))) => m,
        };
        let text;
        let msg = match msg {
            Incoming::Text(t) => {
                text = t;
                match text.split_at_checked(1) {
                    Some(("3", _)) => {
                        if self.pong_due {
                            self.pong_due = false;
                            self.rearm();
                        }
                        return Step::Progress;
                    }
                    Some(("4", rest)) => Message::Text(rest),
                    Some(("1", _)) => return self.end(CloseReason::ClientClosed, Some(CLOSE_NORMAL)),
                    Some(("5" | "6", _)) => return Step::Progress, // upgrade (already done), noop
                    _ => return self.end(CloseReason::ProtocolError, Some(CLOSE_NORMAL)),
                }
            }
            Incoming::Binary(b) => Message::Binary(b),
            Incoming::Ping(_) | Incoming::Close => return Step::Progress,
        };
        match self.srv.protocol.message(&mut self.conn, &self.outbox, msg) {
            Ok(None) => {}
            Ok(Some(work)) => self.handling = Some(work),
            Err(reason) => {
                tracing::debug!(reason, "closing a websocket on a malformed packet");
                return self.end(CloseReason::ProtocolError, Some(CLOSE_NORMAL));
            }
        }
        Step::Progress
    }

    /// Sets the timer to the next thing due: the pong deadline while a ping
    /// is unanswered, else the next ping; the protocol's handshake deadline
    /// when that comes first.
    fn rearm(&mut self) {
        let c = &self.srv.config;
        let mut wake = if self.pong_due { self.next_ping - c.ping_interval + c.ping_timeout } else { self.next_ping };
        if let Some(d) = self.srv.protocol.deadline(&self.conn) {
            wake = wake.min(d);
        }
        self.timer.as_mut().reset(wake);
    }

    /// The heartbeat, and the protocol's handshake deadline.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Step {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Step::Idle;
        }
        let now = Instant::now();
        if self.srv.protocol.deadline(&self.conn).is_some_and(|d| now >= d) {
            tracing::debug!("handshake timeout");
            self.srv.protocol.expired(&self.conn);
            return self.end(CloseReason::Timeout, Some(CLOSE_NORMAL));
        }
        let c = self.srv.config;
        if self.pong_due {
            if now >= self.next_ping - c.ping_interval + c.ping_timeout {
                tracing::debug!("ping timeout");
                return self.end(CloseReason::Timeout, None);
            }
        } else if now >= self.next_ping {
            self.outbox.push(Frame::Text(Bytes::from_static(b"2"))).ok();
            self.pong_due = true;
            self.next_ping = now + c.ping_interval;
        }
        self.rearm();
        Step::Progress
    }
}

impl<P: Protocol> Future for Session<P> {
    type Output = CloseReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseReason> {
        let this = self.get_mut();
        loop {
            if let Some(code) = this.ending {
                // Whether the close frame makes it or not, the connection is
                // over; a peer that does not take it within the grace is cut.
                if this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(this.why);
                }
                return this.ws.poll_close(cx, code, &mut this.cursor).map(|_| this.why);
            }
            let mut progress = false;
            for step in [Self::poll_writes, Self::poll_handling, Self::poll_read, Self::poll_timer] {
                match step(this, cx) {
                    Step::End(None) => return Poll::Ready(this.why),
                    Step::End(Some(code)) => {
                        // A frame cut short cannot be followed by a close frame.
                        if this.cursor.1 != 0 {
                            return Poll::Ready(this.why);
                        }
                        this.ending = Some(code);
                        this.cursor = (0, 0);
                        this.timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                        progress = true;
                        break;
                    }
                    Step::Progress => progress = true,
                    Step::Idle => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

impl<P: Protocol> Unpin for Session<P> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_shape() {
        let c = Config::default();
        let p = open_packet("abc", true, &c);
        assert!(p.starts_with('0'));
        let v: serde_json::Value = serde_json::from_str(&p[1..]).expect("json");
        assert_eq!(v["sid"], "abc");
        assert_eq!(v["upgrades"], serde_json::json!(["websocket"]));
        assert_eq!(v["pingInterval"], 25000);
    }

    #[test]
    fn polling_payloads_carry_binary_as_base64() {
        let frames: VecDeque<Frame> =
            [Frame::text("4hello"), Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]))].into_iter().collect();
        assert_eq!(polling_payload(&frames, None), "4hello\u{1e}bAQIDBA==");
        assert_eq!(polling_payload(&VecDeque::new(), None), "6");
        assert_eq!(polling_payload(&VecDeque::new(), Some(CloseReason::ClientClosed)), "6");
        assert_eq!(polling_payload(&VecDeque::new(), Some(CloseReason::ProtocolError)), "1");
        assert_eq!(polling_payload(&frames, Some(CloseReason::ServerShutdown)), "4hello\u{1e}bAQIDBA==\u{1e}1");
    }

    #[test]
    fn sids_differ() {
        assert_ne!(new_sid(), new_sid());
        assert_eq!(new_sid().len(), 24);
    }
}
