//! The transport boundary: what the gateway core needs from a protocol layer.
//!
//! The core (rooms, subscriptions, presence, typing, recovery) never sees
//! Socket.IO types. A protocol layer admits a connection through
//! [`crate::hub::Hub::admit`], registers it with a [`Connection`] handle,
//! feeds it incoming events, and reports its end. Everything the core sends
//! goes through [`Connection::send`], which must not wait: a full outgoing
//! buffer is reported, and the core drops that client.
//!
//! Implementation: [`socketio`], the gateway's [`omnibiz_sio::Handler`] on
//! our own Engine.IO v4 / Socket.IO v5 crate (`sio/`), which replaced
//! socketioxide once every real-client test passed on both (BENCHMARKS.md
//! says why) and passes the official compliance suites.

pub mod nodes;
pub mod socketio;

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::value::RawValue;

/// The core's id for a connection (unique within this process). Never
/// zero, so an `Option<ConnId>` — the protocol layer's per-connection
/// state for the main namespace — takes no more room than the id.
pub type ConnId = std::num::NonZeroU64;

/// An outgoing event, built once per delivery and shared by every recipient:
/// its Engine.IO frame is encoded once, however many sockets receive it.
#[derive(Debug)]
pub struct OutEvent {
    pub name: &'static str,
    frame: Bytes,
}

impl OutEvent {
    /// From a JSON value (acks, errors, replayed history).
    pub fn new(name: &'static str, data: serde_json::Value) -> Arc<Self> {
        // Serializing a &str and a serde_json::Value cannot fail.
        let body = serde_json::to_string(&(name, &data)).unwrap_or_else(|_| "[]".into());
        let mut out = String::with_capacity(body.len() + 2);
        out.push_str("42");
        out.push_str(&body);
        Arc::new(Self { name, frame: Bytes::from(out) })
    }

    /// From a payload already in JSON text (what the bus carries): the frame
    /// is spliced together, the payload never decoded.
    pub fn raw(name: &'static str, data: &RawValue) -> Arc<Self> {
        let data = data.get();
        let mut out = String::with_capacity(data.len() + name.len() + 8);
        out.push_str("42[\"");
        out.push_str(name); // event names are fixed ASCII identifiers: nothing to escape
        out.push_str("\",");
        out.push_str(data);
        out.push(']');
        Arc::new(Self { name, frame: Bytes::from(out) })
    }

    /// `41`: a Socket.IO DISCONNECT of the default namespace (the server ends
    /// the session; socket.io clients do not reconnect by themselves).
    pub fn disconnect() -> Arc<Self> {
        Arc::new(Self { name: "disconnect", frame: Bytes::from_static(b"41") })
    }

    /// `42["name",data]`: an Engine.IO MESSAGE carrying a Socket.IO v5 EVENT
    /// for the default namespace, as UTF-8. Cloning the result shares the bytes.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

pub use omnibiz_sio::{CloseReason, SendError};

/// One client connection, as the core sees it.
pub trait Connection: Send + Sync + 'static {
    /// Queues an event without waiting.
    fn send(&self, event: &OutEvent) -> Result<(), SendError>;
    /// Closes the connection. The transport reports the end afterwards.
    fn close(&self, reason: CloseReason);
    /// Frames queued and not yet written (0 when the transport cannot tell).
    fn queued(&self) -> usize {
        0
    }
}

/// A connection's outbox is the handle the core holds: an event's frame,
/// encoded once, is queued for every recipient without a copy.
impl Connection for omnibiz_sio::Outbox {
    fn send(&self, event: &OutEvent) -> Result<(), SendError> {
        self.push(omnibiz_sio::Frame::Text(event.frame().clone()))
    }

    fn close(&self, reason: CloseReason) {
        omnibiz_sio::Outbox::close(self, reason);
    }

    fn queued(&self) -> usize {
        omnibiz_sio::Outbox::queued(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_encoded_once_in_engine_io_form() {
        let e = OutEvent::new("message_received", serde_json::json!({"a": 1}));
        assert_eq!(&e.frame()[..], br#"42["message_received",{"a":1}]"#);
        let raw = serde_json::value::to_raw_value(&serde_json::json!({"a": 1, "b": "x\"y"})).expect("raw");
        let r = OutEvent::raw("message_received", &raw);
        assert_eq!(&r.frame()[..], br#"42["message_received",{"a":1,"b":"x\"y"}]"#);
        let same = OutEvent::new("message_received", serde_json::json!({"a": 1, "b": "x\"y"}));
        assert_eq!(r.frame(), same.frame(), "both constructors give the same frame");
    }
}
