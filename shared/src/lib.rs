//! Shared foundation of every OmniBiz target.
//!
//! # Layout
//! - [`domain`]: ids, entities, validated input (`MessageBody`, `ClientMessageId`).
//! - [`auth`]: JWT verification into a [`auth::Principal`], and the access policy.
//! - [`store`]: the `Store` trait; MongoDB and embedded SQLite implementations.
//! - [`bus`]: the `Bus` trait, topics, the versioned envelope; in-process bus.
//! - [`presence`]: who is online.
//! - [`hooks`]: webhooks — outbox, fan-out, signed deliveries with retries.
//! - [`files`]: uploads in object storage (S3 or a local directory), signed links, the sweeper.
//! - [`service`]: the messaging service, the one code path for every change.
//! - [`config`], [`telemetry`]: typed settings, logs and metrics.
//!
//! # How it works
//! A REST handler or socket event authenticates a token into a `Principal`,
//! the service loads the `Actor`, checks the policy, writes through the
//! `Store`, and then publishes an `Envelope` on the `Bus`; gateways relay it
//! to the sockets in the conversation's room.

pub mod auth;
pub mod bus;
pub mod config;
pub mod directory;
pub mod domain;
pub mod files;
pub mod hooks;
pub mod presence;
pub mod service;
pub mod store;
pub mod telemetry;
