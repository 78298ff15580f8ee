//! The two Engine.IO transports.

pub(crate) mod polling;
pub(crate) mod websocket;
