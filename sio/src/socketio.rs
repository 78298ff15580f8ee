//! Socket.IO v5 (`socketio/socket.io-protocol`) on top of Engine.IO:
//! packets, namespaces, acks, binary attachments — and the [`Handler`]
//! trait the application implements.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use crate::BoxFuture;
use crate::engine::{Config, Message, Protocol, new_sid};
use crate::outbox::{CloseReason, Frame, Outbox, SendError};

/// Most binary attachments one packet may announce.
const MAX_ATTACHMENTS: usize = 64;

/// A client asks to join a namespace.
#[derive(Debug)]
pub struct Connect {
    /// `/` or a custom namespace the handler serves.
    pub nsp: String,
    /// The CONNECT packet's payload (the client's `auth` option); `{}` when absent.
    pub auth: Value,
    /// A bearer token from the `Authorization` header or `?token=`, if any.
    pub token: Option<String>,
    /// Where to emit to this namespace socket.
    pub socket: Socket,
}

/// An event from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    /// The arguments after the name. Binary arguments stay as the
    /// protocol's placeholders (`{"_placeholder":true,"num":i}`), with the
    /// bytes in `binary[i]`.
    pub args: Vec<Value>,
    pub binary: Vec<Bytes>,
    /// The client waits for an acknowledgement with this id ([`Socket::ack`]).
    pub ack: Option<u64>,
}

/// Why a namespace socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client left the namespace (a DISCONNECT packet).
    ClientDisconnect,
    /// The connection under it ended.
    Transport(CloseReason),
}

/// What the application implements: connect (accept with state, or refuse
/// with a payload for CONNECT_ERROR), events, disconnect. It knows nothing
/// of Engine.IO, and this layer nothing of the application.
pub trait Handler: Send + Sync + 'static {
    /// Per namespace socket (e.g. the application's connection id).
    type State: Send + Sync + 'static;
    /// Namespaces served; CONNECT to any other is refused with
    /// `{"message":"Invalid namespace"}`.
    fn serves(&self, nsp: &str) -> bool {
        nsp == "/"
    }
    /// Accept (`Ok(state)`) or refuse (`Err(data)`, sent as CONNECT_ERROR).
    fn connect(self: &Arc<Self>, connect: Connect) -> BoxFuture<Result<Self::State, Value>>;
    /// After the CONNECT acknowledgement was handed to the transport: the socket is live.
    fn connected(self: &Arc<Self>, _state: &Self::State, _socket: &Socket) -> Option<BoxFuture<()>> {
        None
    }
    /// One event; the next is read only once this finishes (events stay in order).
    fn event(self: &Arc<Self>, state: &Self::State, socket: Socket, event: Event) -> BoxFuture<()>;
    fn disconnect(self: &Arc<Self>, state: Self::State, reason: DisconnectReason) -> Option<BoxFuture<()>>;
    /// The connection's handshake took longer than [`crate::Config::connect_timeout`]
    /// (the client's CONNECT, and [`Handler::connect`] and [`Handler::connected`]
    /// with it); it is being closed. For the application's metrics: a
    /// connect still in flight runs to its end, and a socket it accepted
    /// gets its [`Handler::disconnect`].
    fn handshake_timed_out(self: &Arc<Self>) {}
    /// The connection's first namespace socket was accepted, this long after
    /// the connection opened (what [`crate::Config::connect_timeout`] bounds).
    fn handshake_completed(self: &Arc<Self>, _took: std::time::Duration) {}

    /// Whether to refuse a new connection (503) while `pending` others are
    /// still in their handshake (opened, first CONNECT not accepted yet):
    /// lets the application count them against its capacity.
    fn at_capacity(&self, _pending: usize) -> bool {
        false
    }
}

/// A namespace socket: where to send packets for it.
#[derive(Clone)]
pub struct Socket {
    outbox: Arc<Outbox>,
    /// `None` for the main namespace.
    nsp: Option<Arc<str>>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("nsp", &self.nsp()).finish()
    }
}

impl Socket {
    pub fn nsp(&self) -> &str {
        self.nsp.as_deref().unwrap_or("/")
    }

    /// The connection's outbox (shared by all its namespaces).
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Emits `name` with `args`; binary arguments as placeholders numbered
    /// into `binary` (see [`Event::args`]).
    pub fn emit(&self, name: &str, args: &[Value], binary: &[Bytes]) -> Result<(), SendError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::String(name.to_owned()));
        all.extend_from_slice(args);
        self.send_packet(if binary.is_empty() { '2' } else { '5' }, None, &Value::Array(all), binary)
    }

    /// Acknowledges the client's event `id` with `args`.
    pub fn ack(&self, id: u64, args: &[Value], binary: &[Bytes]) -> Result<(), SendError> {
        self.send_packet(if binary.is_empty() { '3' } else { '6' }, Some(id), &Value::Array(args.to_vec()), binary)
    }

    /// An ACK with one argument already encoded as JSON: spliced into the
    /// packet as is, never decoded or encoded again.
    pub fn ack_raw(&self, id: u64, arg: &serde_json::value::RawValue) -> Result<(), SendError> {
        let mut text = encode('3', self.nsp.as_deref(), 0, Some(id), None);
        text.reserve(arg.get().len() + 2);
        text.push('[');
        text.push_str(arg.get());
        text.push(']');
        self.outbox.push_all(std::iter::once(Frame::text(text)), 1)
    }

    fn send_packet(&self, kind: char, id: Option<u64>, data: &Value, binary: &[Bytes]) -> Result<(), SendError> {
        let text = encode(kind, self.nsp.as_deref(), binary.len(), id, Some(data));
        let frames = std::iter::once(Frame::text(text)).chain(binary.iter().cloned().map(Frame::Binary));
        self.outbox.push_all(frames, binary.len() + 1)
    }
}

/// Encodes an Engine.IO MESSAGE carrying a Socket.IO packet:
/// `4<type>[<n>-][<nsp>,][<id>][<json>]`.
fn encode(kind: char, nsp: Option<&str>, attachments: usize, id: Option<u64>, data: Option<&Value>) -> String {
    let mut out = String::from("4");
    out.push(kind);
    if matches!(kind, '5' | '6') {
        out.push_str(&format!("{attachments}-"));
    }
    if let Some(n) = nsp {
        out.push_str(n);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    if let Some(d) = data {
        out.push_str(&d.to_string());
    }
    out
}

/// A parsed Socket.IO packet.
#[derive(Debug, PartialEq)]
pub(crate) struct Packet {
    pub(crate) kind: u8,
    pub(crate) nsp: String,
    pub(crate) attachments: usize,
    pub(crate) id: Option<u64>,
    pub(crate) data: Option<Value>,
}

/// Parses a Socket.IO packet and checks its shape against its type;
/// `Err` carries the reason (the connection is then closed, as the
/// reference server does).
pub(crate) fn parse(s: &str) -> Result<Packet, &'static str> {
    let kind = match s.as_bytes().first() {
        Some(k @ b'0'..=b'6') => k - b'0',
        Some(_) => return Err("unknown packet type"),
        None => return Err("empty packet"),
    };
    let mut rest = &s[1..];
    let mut attachments = 0;
    if matches!(kind, 5 | 6) {
        let dash = rest.find('-').ok_or("binary packet without an attachment count")?;
        attachments = rest[..dash].parse().map_err(|_| "bad attachment count")?;
        if attachments > MAX_ATTACHMENTS {
            return Err("too many attachments");
        }
        rest = &rest[dash + 1..];
    }
    let mut nsp = "/".to_owned();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = rest[..end].to_owned();
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 { Some(rest[..digits].parse().map_err(|_| "bad ack id")?) } else { None };
    rest = &rest[digits..];
    let data: Option<Value> =
        if rest.is_empty() { None } else { Some(serde_json::from_str(rest).map_err(|_| "malformed payload")?) };
    let ok = match (kind, &data) {
        (0, None) => id.is_none(),
        (0, Some(d)) => id.is_none() && d.is_object(),
        (1, None) => id.is_none(),
        (2 | 5, Some(Value::Array(a))) => a.first().is_some_and(Value::is_string),
        (3 | 6, Some(Value::Array(_))) => id.is_some(),
        _ => false,
    };
    if !ok {
        return Err("payload does not fit the packet type");
    }
    Ok(Packet { kind, nsp, attachments, id, data })
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
struct Partial {
    packet: Packet,
    binary: Vec<Bytes>,
}

/// What a connection holds at the Socket.IO level. The common case — one
/// socket on the main namespace, nothing pending — is the state inline
/// plus one empty pointer.
pub struct SioConn<S> {
    main: Option<S>,
    rest: Option<Box<Rest<S>>>,
}

struct Rest<S> {
    /// The outer token, until the first CONNECT.
    token: Option<String>,
    /// Until the first CONNECT succeeds.
    handshake: Option<Handshake>,
    /// Sockets on other namespaces.
    others: Vec<(Arc<str>, S)>,
    partial: Option<Partial>,
}

/// A connection's Socket.IO handshake, from its opening to the first CONNECT accepted.
struct Handshake {
    opened: Instant,
    /// `opened` + the time allowed to send CONNECT; once it came, `opened`
    /// + the whole connect timeout.
    deadline: Instant,
    /// The whole connect timeout, for when the CONNECT comes.
    allowance: std::time::Duration,
    /// Counts this connection as one in handshake until its CONNECT is
    /// answered (then the application counts it, or it was refused).
    pending: Option<Pending>,
}

/// One connection in handshake, counted in [`SocketIo`]'s pending total.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> SioConn<S> {
    fn rest(&mut self) -> &mut Rest<S> {
        self.rest
            .get_or_insert_with(|| Box::new(Rest { token: None, handshake: None, others: Vec::new(), partial: None }))
    }

    /// Frees the side state once nothing is in it.
    fn tidy(&mut self) {
        if self
            .rest
            .as_ref()
            .is_some_and(|r| r.token.is_none() && r.handshake.is_none() && r.others.is_empty() && r.partial.is_none())
        {
            self.rest = None;
        }
    }

    fn state(&self, nsp: &str) -> Option<&S> {
        if nsp == "/" {
            return self.main.as_ref();
        }
        self.rest.as_ref()?.others.iter().find(|(n, _)| &**n == nsp).map(|(_, s)| s)
    }
}

/// What a finished CONNECT hands back.
pub enum Update<S> {
    None,
    Connected(Option<Arc<str>>, S),
}

/// The Socket.IO protocol over Engine.IO, for a [`Handler`].
pub struct SocketIo<H: Handler> {
    handler: Arc<H>,
    /// Connections opened whose first CONNECT is not accepted yet.
    pending: Arc<AtomicUsize>,
}

impl<H: Handler> SocketIo<H> {
    pub fn new(handler: Arc<H>) -> Self {
        Self { handler, pending: Arc::default() }
    }

    fn socket(outbox: &Arc<Outbox>, nsp: &str) -> Socket {
        Socket { outbox: Arc::clone(outbox), nsp: (nsp != "/").then(|| Arc::from(nsp)) }
    }

    fn dispatch(
        &self,
        conn: &mut SioConn<H::State>,
        outbox: &Arc<Outbox>,
        packet: Packet,
        binary: Vec<Bytes>,
    ) -> Option<BoxFuture<Update<H::State>>> {
        match packet.kind {
            0 => {
                let socket = Self::socket(outbox, &packet.nsp);
                if !self.handler.serves(&packet.nsp) {
                    let refusal = serde_json::json!({"message": "Invalid namespace"});
                    let _ = outbox.push(Frame::text(encode('4', socket.nsp.as_deref(), 0, None, Some(&refusal))));
                    return None;
                }
                if conn.state(&packet.nsp).is_some() {
                    return None; // already connected there
                }
                // The CONNECT came: the rest of the allowance is the application's.
                let mut pending = None;
                if let Some(h) = conn.rest.as_mut().and_then(|r| r.handshake.as_mut()) {
                    h.deadline = h.deadline.max(h.opened + h.allowance);
                    pending = h.pending.take();
                }
                let token = conn.rest.as_mut().and_then(|r| r.token.clone());
                let connect = Connect {
                    nsp: packet.nsp.clone(),
                    auth: packet.data.unwrap_or_else(|| Value::Object(Default::default())),
                    token,
                    socket: socket.clone(),
                };
                let handler = Arc::clone(&self.handler);
                Some(Box::pin(async move {
                    let answer = handler.connect(connect).await;
                    // Answered: no longer in handshake (an accepted one is the
                    // application's to count before the client hears it).
                    drop(pending);
                    match answer {
                        Ok(state) => {
                            let ok = serde_json::json!({"sid": new_sid()});
                            let _ =
                                socket.outbox.push(Frame::text(encode('0', socket.nsp.as_deref(), 0, None, Some(&ok))));
                            // Let the transport write the acknowledgement on its
                            // own before what `connected` sends (clients that
                            // handle one message per read see them apart).
                            tokio::task::yield_now().await;
                            if let Some(f) = handler.connected(&state, &socket) {
                                f.await;
                            }
                            Update::Connected(socket.nsp.clone(), state)
                        }
                        Err(data) => {
                            let _ = socket.outbox.push(Frame::text(encode(
                                '4',
                                socket.nsp.as_deref(),
                                0,
                                None,
                                Some(&data),
                            )));
                            Update::None
                        }
                    }
                }))
            }
            1 => {
                let state = if packet.nsp == "/" {
                    conn.main.take()
                } else {
                    let others = &mut conn.rest().others;
                    others.iter().position(|(n, _)| **n == *packet.nsp).map(|i| others.swap_remove(i).1)
                };
                conn.tidy();
                let state = state?;
                self.handler.disconnect(state, DisconnectReason::ClientDisconnect).map(|f| {
                    Box::pin(async move {
                        f.await;
                        Update::None
                    }) as BoxFuture<_>
                })
            }
            2 | 5 => {
                let state = conn.state(&packet.nsp)?; // not connected there: ignored
                let mut args = match packet.data {
                    Some(Value::Array(a)) => a,
                    _ => return None,
                };
                let name = match args.remove(0) {
                    Value::String(s) => s,
                    _ => return None,
                };
                let event = Event { name, args, binary, ack: packet.id };
                let f = self.handler.event(state, Self::socket(outbox, &packet.nsp), event);
                Some(Box::pin(async move {
                    f.await;
                    Update::None
                }))
            }
            // Acks of server emits: this layer sends none that ask for one.
            _ => None,
        }
    }
}

impl<H: Handler> Protocol for SocketIo<H> {
    type Conn = SioConn<H::State>;
    type Update = Update<H::State>;

    fn open(&self, _outbox: &Arc<Outbox>, token: Option<String>, config: &Config) -> Self::Conn {
        let now = Instant::now();
        self.pending.fetch_add(1, Ordering::Relaxed);
        let handshake = Handshake {
            opened: now,
            deadline: now + config.connect_packet_timeout.min(config.connect_timeout),
            allowance: config.connect_timeout,
            pending: Some(Pending(Arc::clone(&self.pending))),
        };
        let rest = Rest { token, handshake: Some(handshake), others: Vec::new(), partial: None };
        SioConn { main: None, rest: Some(Box::new(rest)) }
    }

    fn message(
        &self,
        conn: &mut Self::Conn,
        outbox: &Arc<Outbox>,
        msg: Message<'_>,
    ) -> Result<Option<BoxFuture<Self::Update>>, &'static str> {
        match msg {
            Message::Text(t) => {
                if conn.rest.as_ref().is_some_and(|r| r.partial.is_some()) {
                    return Err("a packet while attachments were due");
                }
                let packet = parse(t)?;
                if matches!(packet.kind, 4) {
                    return Err("CONNECT_ERROR from a client");
                }
                if packet.attachments > 0 {
                    // Nothing is buffered for a client that has not signed in.
                    if conn.main.is_none() && conn.rest.as_ref().is_none_or(|r| r.others.is_empty()) {
                        return Err("a binary packet before CONNECT");
                    }
                    conn.rest().partial = Some(Partial { packet, binary: Vec::new() });
                    return Ok(None);
                }
                Ok(self.dispatch(conn, outbox, packet, Vec::new()))
            }
            Message::Binary(b) => {
                let rest = conn.rest.as_mut().ok_or("an unexpected binary message")?;
                let partial = rest.partial.as_mut().ok_or("an unexpected binary message")?;
                partial.binary.push(Bytes::from(b));
                if partial.binary.len() < partial.packet.attachments {
                    return Ok(None);
                }
                let Some(Partial { packet, binary }) = rest.partial.take() else { return Ok(None) };
                conn.tidy();
                Ok(self.dispatch(conn, outbox, packet, binary))
            }
        }
    }

    fn apply(&self, conn: &mut Self::Conn, update: Self::Update) {
        if let Update::Connected(nsp, state) = update {
            match nsp {
                None => conn.main = Some(state),
                Some(n) => conn.rest().others.push((n, state)),
            }
            if let Some(r) = conn.rest.as_mut() {
                if let Some(h) = r.handshake.take() {
                    self.handler.handshake_completed(h.opened.elapsed());
                }
                r.token = None;
            }
            conn.tidy();
        }
    }

    fn deadline(&self, conn: &Self::Conn) -> Option<Instant> {
        Some(conn.rest.as_ref()?.handshake.as_ref()?.deadline)
    }

    fn expired(&self, _conn: &Self::Conn) {
        self.handler.handshake_timed_out();
    }

    fn at_capacity(&self) -> bool {
        self.handler.at_capacity(self.pending.load(Ordering::Relaxed))
    }

    fn close(&self, conn: Self::Conn, reason: CloseReason) -> Option<BoxFuture<()>> {
        let mut states: Vec<H::State> = conn.main.into_iter().collect();
        if let Some(rest) = conn.rest {
            states.extend(rest.others.into_iter().map(|(_, s)| s));
        }
        let work: Vec<BoxFuture<()>> = states
            .into_iter()
            .filter_map(|s| self.handler.disconnect(s, DisconnectReason::Transport(reason)))
            .collect();
        if work.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            for w in work {
                w.await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_packet_type() {
        let p = parse("0").expect("connect");
        assert_eq!((p.kind, p.nsp.as_str(), p.data), (0, "/", None));
        let p = parse(r#"0/custom,{"token":"abc"}"#).expect("connect to a namespace");
        assert_eq!((p.nsp.as_str(), p.data), ("/custom", Some(json!({"token": "abc"}))));
        assert_eq!(parse("0/custom,").expect("no payload").data, None);
        assert_eq!(parse("1/custom,").expect("disconnect").kind, 1);
        let p = parse(r#"2456["message-with-ack",1,"2"]"#).expect("event with ack");
        assert_eq!((p.id, p.data), (Some(456), Some(json!(["message-with-ack", 1, "2"]))));
        let p = parse(r#"52-789["m",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).expect("binary");
        assert_eq!((p.kind, p.attachments, p.id), (5, 2, Some(789)));
        assert_eq!(parse("31[true]").expect("ack").id, Some(1));
    }

    #[test]
    fn refuses_malformed_packets() {
        for bad in ["", "abc", "9", "2{}", "2[]", "2[1]", r#"2abc["x"]"#, "3[1]", "0[1]", "5[\"x\"]", "599-[\"x\"]"] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_common_connection_state_stays_small() {
        // One socket on the main namespace with a niche-optimised id
        // (the gateway's), nothing pending: an id and one empty pointer.
        assert_eq!(std::mem::size_of::<SioConn<std::num::NonZeroU64>>(), 16);
    }

    #[test]
    fn encodes_packets_as_the_reference_server_does() {
        assert_eq!(encode('2', None, 0, None, Some(&json!(["a", 1]))), r#"42["a",1]"#);
        assert_eq!(encode('2', Some("/custom"), 0, None, Some(&json!(["a"]))), r#"42/custom,["a"]"#);
        assert_eq!(encode('3', None, 0, Some(456), Some(&json!([1]))), "43456[1]");
        assert_eq!(encode('6', None, 2, Some(789), Some(&json!([]))), "462-789[]");
        assert_eq!(
            encode('4', Some("/random"), 0, None, Some(&json!({"message": "Invalid namespace"}))),
            r#"44/random,{"message":"Invalid namespace"}"#
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::hash_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any text: parsed or refused with a reason, never a panic.
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        /// Prefixes of valid packets and byte noise after a type digit: refused or parsed, never a panic.
        #[test]
        fn packet_shaped_noise_never_panics(kind in 0u8..10, rest in "[0-9/,\\-\\[\\]{}\"a-z]{0,60}") {
            let _ = parse(&format!("{kind}{rest}"));
        }

        /// What our encoder writes, the parser reads back unchanged.
        #[test]
        fn events_round_trip(
            name in "[a-z_]{1,20}",
            args in proptest::collection::vec(json_value(), 0..4),
            id in proptest::option::of(0u64..1_000_000),
            nsp in proptest::option::of("/[a-z]{1,10}"),
        ) {
            let mut all = vec![json!(name)];
            all.extend(args);
            let data = Value::Array(all);
            let wire = encode('2', nsp.as_deref(), 0, id, Some(&data));
            // `encode` writes the Engine.IO MESSAGE prefix `4`; the parser takes what follows.
            let p = parse(&wire[1..]).map_err(TestCaseError::fail)?;
            prop_assert_eq!(p.kind, 2);
            prop_assert_eq!(p.id, id);
            prop_assert_eq!(p.nsp, nsp.unwrap_or_else(|| "/".to_owned()));
            prop_assert_eq!(p.data, Some(data));
        }
    }
}
