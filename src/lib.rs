//! The `omnibiz` binary's targets, as a library so integration tests build
//! exactly what `main` runs.
//!
//! - [`app`]: `serve` and `api` — choose the store and bus from the settings,
//!   build the HTTP application, run it until a shutdown signal.
//! - [`seed`]: demo data and tokens.
//! - [`secret`]: the JWT secret of the single-node mode.

pub mod app;
pub mod secret;
pub mod seed;
