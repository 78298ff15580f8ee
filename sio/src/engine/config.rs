//! Settings of an Engine.IO server.

use std::time::Duration;

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
    /// Time a client has to *send* its CONNECT after opening (within
    /// `connect_timeout`): a connection that never signs in is dropped
    /// early rather than held for the whole handshake allowance.
    pub connect_packet_timeout: Duration,
    /// Also take a bearer token from the `token` query parameter (else
    /// only from `Authorization` and the CONNECT payload): query strings
    /// end up in proxy and access logs, so it is off unless a client needs it.
    pub query_token: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 128 * 1024,
            max_buffer: 256,
            connect_timeout: Duration::from_secs(45),
            connect_packet_timeout: Duration::from_secs(10),
            query_token: false,
        }
    }
}
