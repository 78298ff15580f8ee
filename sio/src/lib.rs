//! `omnibiz-sio`: a lean Engine.IO v4 / Socket.IO v5 server for axum,
//! written to the official specifications (`socketio/engine.io-protocol`,
//! `socketio/socket.io-protocol`) and checked against their official
//! server test suites (`scripts/conformance.sh`) and the official clients.
//! It knows nothing of the application: an application implements
//! [`Handler`] (connect → accept with state or refuse; event with an
//! optional ack; disconnect) and mounts [`socket_io`]'s routes.
//!
//! # Layout
//! - `ws`: the server side of RFC 6455 framing — text and binary messages,
//!   ping/pong, close — holding no buffer while a connection is idle and
//!   writing frames with vectored I/O.
//! - `engine`: Engine.IO, generic over the [`Protocol`] on top: `config`,
//!   session ids (`sid`), the server's state and shared responses
//!   (`server`), request dispatch (`engine/mod.rs`), and the two transports,
//!   `transport/polling.rs` (long-polling, binary as base64, the heartbeat)
//!   and `transport/websocket.rs` (WebSocket and the polling → websocket
//!   upgrade).
//! - `socketio`: Socket.IO — packet codec, namespaces, acks, binary
//!   attachments, the connect timeout — as a [`Protocol`] for a [`Handler`].
//! - `outbox`: a connection's bounded outgoing queue ([`Outbox`]).
//! - `cluster`: several processes without sticky sessions — sids name
//!   their process, and requests for another's sessions are forwarded to it
//!   ([`Locator`]).
//!
//! # How it works
//! Each websocket connection is one task: a hand-written state machine that
//! writes what the outbox holds, runs the work of one incoming message at a
//! time (so a client's events are handled in order), reads the next, and
//! keeps the ping timer; the protocol's per-connection state lives inline in
//! it. When a connection ends, the work of the message being handled is
//! not cancelled: it runs to its end first (on a websocket in the
//! connection's task, on polling in a task of the POST's own), so a
//! connect the application accepted always gets its disconnect and an
//! event is handled whole. Nothing is written to a connection directly:
//! the application pushes [`Frame`]s into its [`Outbox`] without waiting,
//! and a client that lets the outbox fill up is reported
//! ([`SendError::Full`]) so the application can drop it. A frame is plain
//! bytes, so an application can encode an event once and push the same
//! frame to every recipient.
//!
//! A polling session lives in the process that made it. With several
//! processes and a [`Locator`], its sid names that process, and any other
//! process forwards the session's requests there (and splices a websocket
//! upgrade through), so a load balancer needs no affinity; the price is one
//! extra hop for a request that lands elsewhere (BENCHMARKS.md).
//!
//! # What it does not do
//! No permessage-deflate; no emit-with-ack from the server (client ACK
//! packets are parsed and checked, then ignored); no connection-state
//! recovery of Socket.IO 4.6 (applications recover by their own cursors);
//! no EIO 3 clients (socket.io-client 2.x).
//!
//! # Example
//! `examples/conformance.rs` is the server the official suites run against:
//! an Engine.IO echo on `/engine.io` and a Socket.IO echo with a `/custom`
//! namespace on `/socket.io`.

mod cluster;
mod engine;
mod outbox;
mod socketio;
mod ws;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use cluster::Locator;
pub use engine::{Config, Message, Protocol, router, router_with};
pub use outbox::{CloseReason, Frame, Outbox, SendError};
pub use socketio::{Connect, DisconnectReason, Event, Handler, SioConn, Socket, SocketIo, Update};

/// Work that runs to its end on its own: a protocol's handling of one
/// message, a handler's reply, a locator's lookup. The crate's one future alias.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The Socket.IO routes at `path` (usually `/socket.io`) for `handler`;
/// with a `locator`, as one process of several (see [`Locator`]).
pub fn socket_io<H: Handler>(
    handler: Arc<H>,
    config: Config,
    path: &str,
    locator: Option<Arc<dyn Locator>>,
) -> axum::Router {
    router_with(SocketIo::new(handler), config, path, locator)
}
