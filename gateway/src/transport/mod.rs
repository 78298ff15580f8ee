//! The transport boundary: what the gateway core needs from a protocol layer.
//!
//! The core (rooms, subscriptions, presence, typing, recovery) never sees
//! Socket.IO types. A protocol layer admits a connection through
//! [`crate::hub::Hub::admit`], registers it with a [`Connection`] handle,
//! feeds it incoming events, and reports its end. Everything the core sends
//! goes through [`Connection::send`], which must not wait: a full outgoing
//! buffer is reported, and the core drops that client.
//!
//! Implementations: [`sio`] (socketioxide).

pub mod sio;

use std::sync::{Arc, OnceLock};

/// The core's id for a connection (unique within this process).
pub type ConnId = u64;

/// An outgoing event, built once per delivery and shared by every recipient.
#[derive(Debug)]
pub struct OutEvent {
    pub name: &'static str,
    pub data: serde_json::Value,
    /// The Socket.IO event packet text, encoded at most once for every
    /// recipient of this event (for transports that write frames themselves).
    encoded: OnceLock<Arc<str>>,
}

impl OutEvent {
    pub fn new(name: &'static str, data: serde_json::Value) -> Arc<Self> {
        Arc::new(Self { name, data, encoded: OnceLock::new() })
    }

    /// `2["name",data]`, the Socket.IO v5 EVENT packet for the default namespace.
    pub fn packet(&self) -> &Arc<str> {
        self.encoded.get_or_init(|| {
            let body = serde_json::to_string(&(self.name, &self.data)).unwrap_or_else(|_| "[]".into());
            format!("2{body}").into()
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_is_encoded_once_in_socket_io_form() {
        let e = OutEvent::new("message_received", serde_json::json!({"a": 1}));
        assert_eq!(&**e.packet(), r#"2["message_received",{"a":1}]"#);
        assert!(Arc::ptr_eq(e.packet(), e.packet()));
    }
}
