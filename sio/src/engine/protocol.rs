//! What runs on top of Engine.IO: the [`Protocol`] a server is generic over.

use std::sync::Arc;

use tokio::time::Instant;

use super::config::Config;
use crate::BoxFuture;
use crate::outbox::{CloseReason, Outbox};

/// An Engine.IO message from the client (the MESSAGE type digit removed).
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(Vec<u8>),
}

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
    ) -> Result<Option<BoxFuture<Self::Update>>, &'static str>;
    fn apply(&self, conn: &mut Self::Conn, update: Self::Update);
    /// The time by which the protocol's own handshake must be done, while it is not.
    fn deadline(&self, conn: &Self::Conn) -> Option<Instant>;
    /// The handshake's [`Protocol::deadline`] passed: the connection ends
    /// with [`CloseReason::Timeout`] (then [`Protocol::close`] runs).
    fn expired(&self, _conn: &Self::Conn) {}
    /// The connection ended; work to run (telling the application).
    fn close(&self, conn: Self::Conn, reason: CloseReason) -> Option<BoxFuture<()>>;
    /// Whether a new connection would exceed what the application accepts
    /// (asked before each handshake; `true` answers 503).
    fn at_capacity(&self) -> bool {
        false
    }
}
