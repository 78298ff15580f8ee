//! The transport boundary: what the gateway core needs from a protocol layer.
//!
//! The core (rooms, subscriptions, presence, typing, recovery) never sees
//! Socket.IO types. A protocol layer admits a connection through
//! [`crate::hub::Hub::admit`], registers it with a [`Connection`] handle,
//! feeds it incoming events, and reports its end. Everything the core sends
//! goes through [`Connection::send`], which must not wait: a full outgoing
//! buffer is reported, and the core drops that client.
//!
//! Implementation: [`eio`], our own Engine.IO v4 / Socket.IO v5 layer. (It
//! replaced socketioxide once every real-client test passed on both; see
//! BENCHMARKS.md for why.)

pub mod eio;
mod ws;

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::value::RawValue;

/// The core's id for a connection (unique within this process).
pub type ConnId = u64;

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

    /// `42["name",data]`: an Engine.IO MESSAGE carrying a Socket.IO v5 EVENT
    /// for the default namespace, as UTF-8. Cloning the result shares the bytes.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// Why a send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("outgoing buffer full")]
    Full,
    #[error("connection closed")]
    Closed,
}

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client did not read fast enough.
    SlowClient,
    /// This gateway is shutting down; reconnect (elsewhere).
    ServerShutdown,
}

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
