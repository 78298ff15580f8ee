//! The servers the official compliance suites test (`scripts/conformance.sh`
//! runs them): on one port (3000 unless `PORT` is set),
//!
//! - `/engine.io`: Engine.IO alone, sending every message (text or binary)
//!   straight back — for socketio/engine.io-protocol's suite;
//! - `/socket.io`: Socket.IO on the main namespace and `/custom`; on connect
//!   it emits `auth` with the handshake's payload, echoes `message` as
//!   `message-back` and acknowledges `message-with-ack` with its arguments —
//!   for socketio/socket.io-protocol's suite.
//!
//! Both: ping interval 300 ms, ping timeout 200 ms, max payload 1 000 000
//! bytes, connect timeout 1 s, CORS for any origin.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use omnibiz_sio::{
    BoxFuture, CloseReason, Config, Connect, DisconnectReason, Event, Frame, Handler, Message, Outbox, Protocol, Socket,
};
use serde_json::Value;
use tokio::time::Instant;

/// Engine.IO echo: no protocol on top, every message goes back.
struct Echo;

impl Protocol for Echo {
    type Conn = ();
    type Update = ();

    fn open(&self, _: &Arc<Outbox>, _: Option<String>, _: &Config) {}

    fn message(
        &self,
        _: &mut (),
        outbox: &Arc<Outbox>,
        msg: Message<'_>,
    ) -> Result<Option<BoxFuture<()>>, &'static str> {
        let frame = match msg {
            Message::Text(t) => Frame::text(format!("4{t}")),
            Message::Binary(b) => Frame::Binary(Bytes::from(b)),
        };
        let _ = outbox.push(frame);
        Ok(None)
    }

    fn apply(&self, _: &mut (), _: ()) {}

    fn deadline(&self, _: &()) -> Option<Instant> {
        None
    }

    fn close(&self, _: (), _: CloseReason) -> Option<BoxFuture<()>> {
        None
    }
}

/// Socket.IO echo.
struct EchoHandler;

impl Handler for EchoHandler {
    /// The handshake's auth payload, sent back as `auth` once connected.
    type State = Value;

    fn serves(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    fn connect(self: &Arc<Self>, c: Connect) -> BoxFuture<Result<Value, Value>> {
        Box::pin(async move { Ok(c.auth) })
    }

    fn connected(self: &Arc<Self>, auth: &Value, socket: &Socket) -> Option<BoxFuture<()>> {
        let _ = socket.emit("auth", std::slice::from_ref(auth), &[]);
        None
    }

    fn event(self: &Arc<Self>, _: &Value, socket: Socket, e: Event) -> BoxFuture<()> {
        Box::pin(async move {
            match (e.name.as_str(), e.ack) {
                ("message", _) => {
                    let _ = socket.emit("message-back", &e.args, &e.binary);
                }
                ("message-with-ack", Some(id)) => {
                    let _ = socket.ack(id, &e.args, &e.binary);
                }
                _ => {}
            }
        })
    }

    fn disconnect(self: &Arc<Self>, _: Value, _: DisconnectReason) -> Option<BoxFuture<()>> {
        None
    }
}

// One thread, like the reference server's event loop: a few cases send on one
// connection and at once on another (an upgrade packet then a poll; a poll and
// a close together) and expect them handled in the order they were sent. On
// a multi-threaded runtime the second connection's task can run first (both
// orders are correct for a real client, which never races itself that way),
// which made those cases fail in about half the runs on a 2-core host.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let config = Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        max_buffer: 1024,
        connect_timeout: Duration::from_secs(1),
        connect_packet_timeout: Duration::from_secs(1),
        query_token: false,
    };
    let app = omnibiz_sio::router(Echo, config, "/engine.io")
        .merge(omnibiz_sio::socket_io(Arc::new(EchoHandler), config, "/socket.io", None))
        .layer(tower_http::cors::CorsLayer::very_permissive());
    let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000_u16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("conformance servers on http://localhost:{port} (/engine.io, /socket.io)");
    axum::serve(listener, app).await
}
