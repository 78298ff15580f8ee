//! The `omnibiz` binary's targets, as a library so integration tests build
//! exactly what `main` runs.
//!
//! - [`app`]: `serve`, `api` and `gateway` — choose the store, bus and
//!   presence from the settings, build the HTTP application (REST, Socket.IO
//!   or both), run it until a shutdown signal, then drain.
//! - [`seed`]: demo data and tokens.
//! - [`migrate`]: prepares a MongoDB database the Node.js service wrote.
//! - [`secret`]: the JWT secret (and the VAPID key) of the single-node mode.
//! - `notify`: Web Push and notification emails as the settings configure them.

pub mod app;
pub mod http;
pub mod migrate;
mod notify;
pub mod secret;
pub mod seed;
