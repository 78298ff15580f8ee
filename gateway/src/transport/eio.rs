//! Our own Engine.IO v4 / Socket.IO v5 server layer, written to the official
//! protocol specifications (`socketio/engine.io-protocol`,
//! `socketio/socket.io-protocol`) and proven against the official client.
//!
//! Supported: the websocket transport, HTTP long-polling, the polling →
//! websocket upgrade, server pings, the default namespace, CONNECT with an
//! auth payload and CONNECT_ERROR, EVENT with acks. Not supported (refused
//! or ignored): other namespaces, binary packets — OmniBiz uses neither.
//!
//! Why it exists: memory per idle connection. It keeps what a connection
//! needs and nothing more (measured in BENCHMARKS.md):
//! - one task per websocket connection: [`Session`], a hand-written state
//!   machine whose fields are all an idle connection holds (≈ 0.5 KB), with
//!   the ping timer inside it; the handshake phases run in boxed futures
//!   that are freed once the connection is up;
//! - WebSocket framing of our own ([`super::ws`]) that holds no read or
//!   write buffer while idle and writes frames with vectored I/O;
//! - no per-connection channel: outgoing frames go into a small outbox
//!   (a `VecDeque` that allocates only while frames wait) and the waker of
//!   the connection's task; the outbox is bounded and a client that lets it
//!   fill up is closed;
//! - the request is not kept: the token and nothing else is copied out of
//!   it before the upgrade, so hyper's 16 KiB read buffer is freed;
//! - event frames are encoded once per delivery and shared by every socket;
//!   bus payloads are spliced in as raw JSON, never decoded.
//!
//! Closing for back-pressure or shutdown closes the *transport*, which the
//! client treats as "transport close" and retries (a Socket.IO DISCONNECT
//! packet would stop it from reconnecting).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::ws::{self, CLOSE_GOING_AWAY, CLOSE_NORMAL, Incoming, WebSocket};
use super::{CloseReason, ConnId, Connection, OutEvent, SendError};
use crate::hub::Hub;

/// Tuning of the layer.
#[derive(Debug, Clone, Copy)]
pub struct EioOptions {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest accepted packet (and polling POST body), in bytes.
    pub max_payload: usize,
    /// Frames queued per connection before it counts as slow.
    pub max_buffer: usize,
    /// Time a client has to send its Socket.IO CONNECT after the handshake.
    pub connect_timeout: Duration,
}

impl Default for EioOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 128 * 1024,
            max_buffer: 256,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Engine.IO record separator between packets in a polling payload.
const SEPARATOR: char = '\u{1e}';

// ---------------------------------------------------------------------------
// The outbox: what the core writes into, what the transport drains.

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    closing: Option<CloseReason>,
    /// The task that writes this connection's frames, woken on a push.
    waker: Option<Waker>,
}

/// One connection's shared state: the outbox and who to wake.
pub(crate) struct Shared {
    // std Mutex: held for a push or a drain, never across an await.
    outbox: Mutex<Outbox>,
    max: usize,
}

impl Shared {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { outbox: Mutex::new(Outbox::default()), max })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame; `Full` when the client is too far behind.
    fn push(&self, frame: Bytes) -> Result<(), SendError> {
        let mut o = self.lock();
        if o.closing.is_some() {
            return Err(SendError::Closed);
        }
        if o.frames.len() >= self.max {
            return Err(SendError::Full);
        }
        o.frames.push_back(frame);
        let waker = o.waker.take();
        drop(o);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Takes every queued frame, and whether the connection must close.
    fn drain(&self) -> (VecDeque<Bytes>, Option<CloseReason>) {
        let mut o = self.lock();
        let frames = std::mem::take(&mut o.frames);
        (frames, o.closing)
    }

    /// Like `drain`, but when there is nothing, registers `cx` to be woken
    /// by the next push or close (under the same lock: no lost wake-up).
    fn poll_drain(&self, cx: &Context<'_>) -> Poll<(VecDeque<Bytes>, Option<CloseReason>)> {
        let mut o = self.lock();
        if o.frames.is_empty() && o.closing.is_none() {
            if !o.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                o.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready((std::mem::take(&mut o.frames), o.closing))
    }

    /// Ready when there is something to take; otherwise registers `cx`.
    fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut o = self.lock();
        if o.frames.is_empty() && o.closing.is_none() {
            o.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// Why the connection is closing, if it is; otherwise registers `cx`
    /// to be woken by the next push or close.
    fn poll_closing(&self, cx: &Context<'_>) -> Option<CloseReason> {
        let mut o = self.lock();
        if o.closing.is_none() && !o.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            o.waker = Some(cx.waker().clone());
        }
        o.closing
    }

    /// Wakes whoever waits on this outbox (a long-poll GET being superseded).
    fn wake(&self) {
        let waker = self.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn close(&self, reason: CloseReason) {
        let waker = {
            let mut o = self.lock();
            o.closing.get_or_insert(reason);
            o.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }
}

impl Connection for Shared {
    fn send(&self, event: &OutEvent) -> Result<(), SendError> {
        self.push(event.frame().clone())
    }

    fn close(&self, reason: CloseReason) {
        Shared::close(self, reason);
    }

    fn queued(&self) -> usize {
        self.lock().frames.len()
    }
}

// ---------------------------------------------------------------------------
// Packets.

/// A Socket.IO packet from a client (inside an Engine.IO MESSAGE).
#[derive(Debug, PartialEq)]
enum Packet<'a> {
    Connect {
        auth: Option<&'a str>,
    },
    Disconnect,
    Event {
        ack: Option<u64>,
        name: String,
        data: Value,
    },
    /// An ACK or binary packet: not used by OmniBiz clients.
    Ignored,
}

/// Parses a Socket.IO packet; `Err` carries a reason (the connection is closed,
/// as the official server does on a parse error). Only the default namespace exists.
fn parse(s: &str) -> Result<Packet<'_>, &'static str> {
    let mut chars = s.char_indices();
    let (_, kind) = chars.next().ok_or("empty packet")?;
    let mut rest = &s[kind.len_utf8()..];
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        if &rest[..end] != "/" {
            return Err("unknown namespace");
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    match kind {
        '0' => Ok(Packet::Connect { auth: (!rest.is_empty()).then_some(rest) }),
        '1' => Ok(Packet::Disconnect),
        '2' => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let ack = if digits > 0 { Some(rest[..digits].parse().map_err(|_| "bad ack id")?) } else { None };
            let args: Vec<Value> = serde_json::from_str(&rest[digits..]).map_err(|_| "malformed event payload")?;
            let mut args = args.into_iter();
            let name = match args.next() {
                Some(Value::String(n)) => n,
                _ => return Err("event without a name"),
            };
            Ok(Packet::Event { ack, name, data: args.next().unwrap_or(Value::Null) })
        }
        '3' | '5' | '6' => Ok(Packet::Ignored),
        _ => Err("unknown packet type"),
    }
}

fn open_packet(sid: &str, upgrades: bool, o: &EioOptions) -> String {
    let open = serde_json::json!({
        "sid": sid,
        "upgrades": if upgrades { vec!["websocket"] } else { vec![] },
        "pingInterval": o.ping_interval.as_millis() as u64,
        "pingTimeout": o.ping_timeout.as_millis() as u64,
        "maxPayload": o.max_payload,
    });
    format!("0{open}")
}

fn ack_frame(id: u64, data: &Value) -> Bytes {
    Bytes::from(format!("43{id}[{data}]"))
}

fn new_sid() -> String {
    rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// The token a client presented outside the CONNECT packet: `Authorization`
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

fn token_from_auth(auth: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(auth?).ok()?;
    v.get("token").and_then(Value::as_str).map(|t| t.trim_start_matches("Bearer ").to_owned())
}

// ---------------------------------------------------------------------------
// The server.

#[derive(Debug, Deserialize)]
struct EioQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    token: Option<String>,
}

struct PollSession {
    shared: Arc<Shared>,
    /// The hub's id once the Socket.IO CONNECT succeeded.
    conn: Mutex<Option<ConnId>>,
    /// A GET is waiting (at most one at a time).
    polling: AtomicBool,
    /// Moved to websocket: polling requests are refused from now on.
    upgraded: AtomicBool,
    outer_token: Option<String>,
    /// Last sign of life (a request or a pong), for the timeout.
    seen: Mutex<Instant>,
    /// Serialises POSTs so packets are handled in order.
    post: tokio::sync::Mutex<()>,
}

struct Server {
    hub: Arc<Hub>,
    opts: EioOptions,
    sessions: Mutex<HashMap<String, Arc<PollSession>>>,
}

impl Server {
    fn session(&self, sid: &str) -> Option<Arc<PollSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(sid).cloned()
    }

    fn forget(&self, sid: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(sid);
    }
}

/// The Socket.IO routes (`/socket.io`) for this hub.
pub fn router(hub: Arc<Hub>, opts: EioOptions) -> Router {
    let server = Arc::new(Server { hub, opts, sessions: Mutex::new(HashMap::new()) });
    Router::new()
        .route("/socket.io", get(on_get).post(on_post))
        .route("/socket.io/", get(on_get).post(on_post))
        .with_state(server)
}

fn bad_request(msg: &'static str) -> Response {
    // The official server answers protocol errors with a JSON body like this.
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": 3, "message": msg}))).into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

async fn on_get(State(srv): State<Arc<Server>>, Query(q): Query<EioQuery>, mut req: Request) -> Response {
    if q.eio.as_deref() != Some("4") {
        return bad_request("Unsupported protocol version");
    }
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
            let existing = match sid {
                Some(sid) => match srv.session(&sid) {
                    Some(s) if !s.upgraded.load(Ordering::Acquire) => Some((sid, s)),
                    _ => return bad_request("Session ID unknown"),
                },
                None => None,
            };
            // The task's lasting state is `run_loop`'s; the handshakes are
            // boxed so their (larger, short-lived) state is freed once done.
            let fut = async move {
                let Ok(io) = on_upgrade.await else { return };
                let socket = WebSocket::new(io, srv.opts.max_payload);
                let started = match existing {
                    None => Box::pin(start_websocket(&srv, socket, outer)).await,
                    Some((sid, session)) => Box::pin(start_upgrade(&srv, socket, sid, session)).await,
                };
                let Some((socket, shared, id)) = started else { return };
                Session::new(Arc::clone(&srv), socket, shared, id).await;
                Box::pin(srv.hub.disconnected(id)).await;
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

async fn on_post(State(srv): State<Arc<Server>>, Query(q): Query<EioQuery>, body: Bytes) -> Response {
    if q.eio.as_deref() != Some("4") || q.transport.as_deref() != Some("polling") {
        return bad_request("Transport unknown");
    }
    let Some(sid) = q.sid else { return bad_request("Session ID unknown") };
    let Some(session) = srv.session(&sid) else { return bad_request("Session ID unknown") };
    if session.upgraded.load(Ordering::Acquire) {
        return bad_request("Bad request");
    }
    if body.len() > srv.opts.max_payload {
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    }
    let Ok(body) = std::str::from_utf8(&body) else { return bad_request("Bad request") };
    let _order = session.post.lock().await;
    *session.seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    for packet in body.split(SEPARATOR) {
        if !handle_polling_packet(&srv, &sid, &session, packet).await {
            close_session(&srv, &sid, &session).await;
            break;
        }
    }
    text("ok".into())
}

/// Handles one Engine.IO packet of a polling session; false to close it.
async fn handle_polling_packet(srv: &Arc<Server>, sid: &str, session: &Arc<PollSession>, packet: &str) -> bool {
    match packet.chars().next() {
        Some('3') | Some('6') => true, // pong, noop
        Some('1') => false,
        Some('4') => {
            let conn = *session.conn.lock().unwrap_or_else(|p| p.into_inner());
            match (parse(&packet[1..]), conn) {
                (Ok(Packet::Connect { auth }), None) => {
                    let token = token_from_auth(auth).or_else(|| session.outer_token.clone());
                    match admit(srv, &session.shared, token).await {
                        Some(id) => {
                            *session.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
                            srv.hub.connected(id).await;
                            true
                        }
                        None => true, // CONNECT_ERROR queued; the client closes
                    }
                }
                (Ok(Packet::Event { ack, name, data }), Some(id)) => {
                    handle_event(&srv.hub, &session.shared, id, &name, data, ack).await;
                    true
                }
                (Ok(Packet::Disconnect), _) => false,
                (Ok(_), _) => true,
                (Err(reason), _) => {
                    tracing::debug!(sid, reason, "closing a polling session on a malformed packet");
                    false
                }
            }
        }
        _ => false,
    }
}

/// CONNECT: checks the token, registers with the hub, answers CONNECT or CONNECT_ERROR.
async fn admit(srv: &Arc<Server>, shared: &Arc<Shared>, token: Option<String>) -> Option<ConnId> {
    match srv.hub.admit(token.as_deref()).await {
        Ok(actor) => {
            let handle: Arc<dyn Connection> = Arc::clone(shared) as Arc<dyn Connection>;
            let id = srv.hub.register(handle, actor);
            let _ = shared.push(Bytes::from(format!("40{{\"sid\":\"{}\"}}", new_sid())));
            Some(id)
        }
        Err(message) => {
            let payload = serde_json::json!({ "message": message });
            let _ = shared.push(Bytes::from(format!("44{payload}")));
            None
        }
    }
}

/// One client event: the hub's reply goes back as an ack and, on failure,
/// a `message_error`. Unknown events are ignored.
async fn handle_event(hub: &Arc<Hub>, shared: &Arc<Shared>, id: ConnId, name: &str, data: Value, ack: Option<u64>) {
    let Some(reply) = hub.handle(id, name, data).await else { return };
    let mut result = Ok(());
    if let Some(err) = reply.message_error {
        result = result.and(shared.push(OutEvent::new("message_error", err).frame().clone()));
    }
    if let Some(ack) = ack {
        result = result.and(shared.push(ack_frame(ack, &reply.ack)));
    }
    if result == Err(SendError::Full) {
        metrics::counter!("gateway_slow_clients_dropped_total").increment(1);
        shared.close(CloseReason::SlowClient);
    }
}

fn handshake_polling(srv: &Arc<Server>, outer_token: Option<String>) -> Response {
    let sid = new_sid();
    let session = Arc::new(PollSession {
        shared: Shared::new(srv.opts.max_buffer),
        conn: Mutex::new(None),
        polling: AtomicBool::new(false),
        upgraded: AtomicBool::new(false),
        outer_token,
        seen: Mutex::new(Instant::now()),
        post: tokio::sync::Mutex::new(()),
    });
    srv.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(sid.clone(), Arc::clone(&session));
    tokio::spawn(supervise_polling(Arc::clone(srv), sid.clone(), session));
    text(open_packet(&sid, true, &srv.opts))
}

/// Pings a polling session and ends it when the client goes quiet.
async fn supervise_polling(srv: Arc<Server>, sid: String, session: Arc<PollSession>) {
    let o = srv.opts;
    loop {
        tokio::time::sleep(o.ping_interval).await;
        if session.upgraded.load(Ordering::Acquire) {
            return; // the websocket task owns the connection now
        }
        let quiet = session.seen.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if quiet > o.ping_interval + o.ping_timeout || session.shared.is_closing() {
            close_session(&srv, &sid, &session).await;
            return;
        }
        if session.shared.push(Bytes::from_static(b"2")).is_err() {
            close_session(&srv, &sid, &session).await;
            return;
        }
    }
}

async fn close_session(srv: &Arc<Server>, sid: &str, session: &Arc<PollSession>) {
    srv.forget(sid);
    session.shared.close(CloseReason::SlowClient);
    let conn = session.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(id) = conn {
        srv.hub.disconnected(id).await;
    }
}

/// A long-poll GET: waits for frames (up to the ping interval) and returns them.
async fn poll(srv: &Arc<Server>, sid: &str) -> Response {
    let Some(session) = srv.session(sid) else { return bad_request("Session ID unknown") };
    if session.upgraded.load(Ordering::Acquire) || session.polling.swap(true, Ordering::AcqRel) {
        return bad_request("Bad request");
    }
    *session.seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    let deadline = Instant::now() + srv.opts.ping_interval;
    let (frames, closing) = loop {
        let (frames, closing) = session.shared.drain();
        if !frames.is_empty() || closing.is_some() {
            break (frames, closing);
        }
        if session.upgraded.load(Ordering::Acquire) {
            break (frames, None); // superseded by the websocket: answer with a noop
        }
        let ready = std::future::poll_fn(|cx| session.shared.poll_ready(cx));
        if tokio::time::timeout_at(deadline, ready).await.is_err() {
            break (frames, None);
        }
    };
    session.polling.store(false, Ordering::Release);
    *session.seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    let mut body = String::new();
    for f in &frames {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        body.push_str(std::str::from_utf8(f).unwrap_or_default());
    }
    if closing.is_some() {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        body.push('1');
    } else if body.is_empty() {
        body.push('6'); // noop: nothing happened during the poll
    }
    text(body)
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
            Incoming::Close => return None,
        }
    }
}

/// A connection that started on websocket: the Engine.IO open packet and the
/// Socket.IO CONNECT. `None` when the client went away or was refused.
async fn start_websocket(
    srv: &Arc<Server>,
    mut ws: WebSocket,
    outer_token: Option<String>,
) -> Option<(WebSocket, Arc<Shared>, ConnId)> {
    let o = srv.opts;
    ws.send_text(open_packet(&new_sid(), false, &o).as_bytes()).await.ok()?;
    // Wait for the Socket.IO CONNECT.
    let deadline = Instant::now() + o.connect_timeout;
    let auth = loop {
        let t = next_text(&mut ws, deadline).await?;
        match t.split_at_checked(1) {
            Some(("4", p)) => match parse(p) {
                Ok(Packet::Connect { auth }) => break token_from_auth(auth),
                Ok(_) => {}
                Err(_) => return None,
            },
            Some(("1", _)) => return None,
            _ => {}
        }
    };
    let shared = Shared::new(o.max_buffer);
    let token = auth.or(outer_token);
    let Some(id) = admit(srv, &shared, token).await else {
        // Deliver the CONNECT_ERROR, then close the transport.
        let (mut frames, _) = shared.drain();
        frames.push_back(Bytes::from_static(b"1"));
        let refuse = async {
            let _ = ws.send_texts(frames.make_contiguous()).await;
            let _ = ws.close(CLOSE_GOING_AWAY).await;
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, refuse).await;
        return None;
    };
    srv.hub.connected(id).await;
    Some((ws, shared, id))
}

/// A polling session moving to websocket (the "probe" dance of the spec).
/// `None` when the upgrade is abandoned (the polling session carries on).
async fn start_upgrade(
    srv: &Arc<Server>,
    mut ws: WebSocket,
    sid: String,
    session: Arc<PollSession>,
) -> Option<(WebSocket, Arc<Shared>, ConnId)> {
    let deadline = Instant::now() + srv.opts.ping_timeout;
    loop {
        match next_text(&mut ws, deadline).await?.as_str() {
            "2probe" => {
                ws.send_text(b"3probe").await.ok()?;
                // Release a pending poll so the client can send the upgrade packet.
                let _ = session.shared.push(Bytes::from_static(b"6"));
            }
            "5" => break,
            _ => return None,
        }
    }
    // A CONNECT may still be in flight on a POST: let it finish first.
    let _order = session.post.lock().await;
    session.upgraded.store(true, Ordering::Release);
    srv.forget(&sid);
    // A GET may still be waiting: wake it so it returns (the client ignores it).
    session.shared.wake();
    let conn = *session.conn.lock().unwrap_or_else(|p| p.into_inner());
    drop(_order);
    conn.map(|id| (ws, Arc::clone(&session.shared), id))
}

type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a closing connection may take to accept its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A websocket connection's one task, written as a state machine by hand:
/// these fields are all an idle connection holds (an `async fn` with a
/// `select!` would keep every branch's future, ≈1 KB more per socket).
///
/// Each poll: write what is queued (the outbox, then a pong), run the event
/// being handled, read and dispatch packets (one event at a time, in order),
/// and keep the Engine.IO ping/pong timer. Once it decides to end, it sends
/// a close frame when there is a reason to give, and resolves.
struct Session {
    srv: Arc<Server>,
    shared: Arc<Shared>,
    ws: WebSocket,
    id: ConnId,
    /// Runs to the next ping, or to the pong deadline while one is due.
    timer: Pin<Box<tokio::time::Sleep>>,
    next_ping: Instant,
    pong_due: bool,
    /// The client event being handled; reading waits until it is done.
    handling: Option<Pending>,
    /// Frames taken from the outbox and not yet fully written, and how far.
    out: VecDeque<Bytes>,
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

impl Session {
    fn new(srv: Arc<Server>, ws: WebSocket, shared: Arc<Shared>, id: ConnId) -> Self {
        let next_ping = Instant::now() + srv.opts.ping_interval;
        Self {
            srv,
            shared,
            ws,
            id,
            timer: Box::pin(tokio::time::sleep_until(next_ping)),
            next_ping,
            pong_due: false,
            handling: None,
            out: VecDeque::new(),
            cursor: (0, 0),
            pong: None,
            closing: None,
            ending: None,
        }
    }

    /// Writes queued frames and refills from the outbox until either is dry.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            if !self.out.is_empty() {
                let frames = self.out.make_contiguous();
                match self.ws.poll_write_texts(cx, frames, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.out = VecDeque::new(); // hold no buffer while idle
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return Step::End(None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if let Some(p) = &self.pong {
                match self.ws.poll_write_pong(cx, p, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.pong = None;
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return Step::End(None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if self.closing.is_some() {
                return Step::End(self.closing);
            }
            match self.shared.poll_drain(cx) {
                Poll::Ready((frames, closing)) => {
                    self.out = frames;
                    if closing.is_some() {
                        // Close the transport, not the Socket.IO session: clients retry.
                        self.closing = Some(CLOSE_GOING_AWAY);
                    }
                }
                Poll::Pending => return Step::Idle,
            }
        }
    }

    /// The socket takes no more for now. A client the hub dropped as too
    /// slow is not waited for (its frames would never drain); otherwise wait
    /// for the socket, or for a close.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Step {
        match self.shared.poll_closing(cx) {
            Some(CloseReason::SlowClient) => Step::End(None),
            _ => Step::Idle,
        }
    }

    /// Reads one message and acts on it.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Step {
        if self.handling.is_some() || self.closing.is_some() {
            return Step::Idle;
        }
        let text = match self.ws.poll_recv(cx) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(None) => return Step::End(None),
            Poll::Ready(Some(Err(v))) => return Step::End(Some(v.code)),
            Poll::Ready(Some(Ok(Incoming::Close))) => return Step::End(Some(CLOSE_NORMAL)),
            Poll::Ready(Some(Ok(Incoming::Ping(p)))) => {
                self.pong = Some(p);
                return Step::Progress;
            }
            Poll::Ready(Some(Ok(Incoming::Text(t)))) => t,
        };
        match text.split_at_checked(1) {
            Some(("3", _)) if self.pong_due => {
                self.pong_due = false;
                self.timer.as_mut().reset(self.next_ping);
            }
            Some(("4", p)) => match parse(p) {
                Ok(Packet::Event { ack, name, data }) => {
                    let (hub, shared, id) = (Arc::clone(&self.srv.hub), Arc::clone(&self.shared), self.id);
                    self.handling = Some(Box::pin(async move {
                        handle_event(&hub, &shared, id, &name, data, ack).await;
                    }));
                }
                Ok(Packet::Disconnect) => return Step::End(Some(CLOSE_NORMAL)),
                Ok(_) => {}
                Err(reason) => {
                    tracing::debug!(conn = self.id, reason, "closing on a malformed packet");
                    return Step::End(Some(CLOSE_NORMAL));
                }
            },
            Some(("1", _)) => return Step::End(Some(CLOSE_NORMAL)),
            _ => {}
        }
        Step::Progress
    }

    /// The Engine.IO heartbeat: a ping every interval, a pong within the timeout.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Step {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Step::Idle;
        }
        if self.pong_due {
            tracing::debug!(conn = self.id, "ping timeout");
            return Step::End(None);
        }
        let now = Instant::now();
        self.shared.push(Bytes::from_static(b"2")).ok();
        self.pong_due = true;
        self.next_ping = now + self.srv.opts.ping_interval;
        self.timer.as_mut().reset(now + self.srv.opts.ping_timeout);
        Step::Progress
    }
}

impl Future for Session {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(code) = this.ending {
                // Whether the close frame makes it or not, the connection is
                // over; a peer that does not take it within the grace is cut.
                if this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                return this.ws.poll_close(cx, code, &mut this.cursor).map(|_| ());
            }
            let mut progress = false;
            for step in [Self::poll_writes, Self::poll_handling, Self::poll_read, Self::poll_timer] {
                match step(this, cx) {
                    Step::End(None) => return Poll::Ready(()),
                    Step::End(Some(code)) => {
                        // A frame cut short cannot be followed by a close frame.
                        if this.cursor.1 != 0 {
                            return Poll::Ready(());
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

impl Session {
    /// Runs the event being handled; its replies land in the outbox.
    fn poll_handling(&mut self, cx: &mut Context<'_>) -> Step {
        match self.handling.as_mut().map(|h| h.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.handling = None;
                Step::Progress
            }
            _ => Step::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_packets_clients_send() {
        assert_eq!(parse("0"), Ok(Packet::Connect { auth: None }));
        assert_eq!(parse(r#"0{"token":"t"}"#), Ok(Packet::Connect { auth: Some(r#"{"token":"t"}"#) }));
        assert_eq!(parse(r#"0/,{"token":"t"}"#), Ok(Packet::Connect { auth: Some(r#"{"token":"t"}"#) }));
        assert_eq!(parse("1"), Ok(Packet::Disconnect));
        assert_eq!(
            parse(r#"2["join_conversation","abc"]"#),
            Ok(Packet::Event { ack: None, name: "join_conversation".into(), data: json!("abc") })
        );
        assert_eq!(
            parse(r#"217["send_message",{"a":1}]"#),
            Ok(Packet::Event { ack: Some(17), name: "send_message".into(), data: json!({"a": 1}) })
        );
        assert_eq!(parse(r#"2["ping"]"#), Ok(Packet::Event { ack: None, name: "ping".into(), data: Value::Null }));
        assert!(parse(r#"2["x""#).is_err());
        assert!(parse("2[]").is_err());
        assert!(parse("2[42]").is_err());
        assert!(parse(r#"0/admin,{}"#).is_err());
        assert!(parse("9").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn open_packet_shape() {
        let o = EioOptions::default();
        let p = open_packet("abc", true, &o);
        assert!(p.starts_with('0'));
        let v: Value = serde_json::from_str(&p[1..]).expect("json");
        assert_eq!(v["sid"], "abc");
        assert_eq!(v["upgrades"], json!(["websocket"]));
        assert_eq!(v["pingInterval"], 25000);
    }

    #[test]
    fn outbox_is_bounded() {
        let s = Shared::new(2);
        assert!(s.push(Bytes::from_static(b"a")).is_ok());
        assert!(s.push(Bytes::from_static(b"b")).is_ok());
        assert_eq!(s.push(Bytes::from_static(b"c")), Err(SendError::Full));
        let (frames, closing) = s.drain();
        assert_eq!(frames.len(), 2);
        assert!(closing.is_none());
        s.close(CloseReason::ServerShutdown);
        assert_eq!(s.push(Bytes::from_static(b"d")), Err(SendError::Closed));
    }

    #[test]
    fn sids_differ() {
        assert_ne!(new_sid(), new_sid());
        assert_eq!(new_sid().len(), 24);
    }
}
