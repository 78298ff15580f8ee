//! The service layer of every OmniBiz target: what happens when someone
//! sends, reads, uploads or subscribes, and the machinery around it.
//!
//! # Layout
//! - [`auth`]: JWT verification into a [`auth::Principal`], and the access policy.
//! - [`messaging`]: [`messaging::Messaging`], the one code path for every
//!   change, one file per use case (conversations, send, edit and delete,
//!   uploads, search, quick replies, receipts, customers, webhooks, publishing).
//! - [`bus`]: the `Bus` trait, topics, the versioned envelope; in-process and Redis buses.
//! - [`presence`]: who is online. [`nodes`]: which gateway pods are alive.
//! - [`webhooks`]: signed deliveries with retries, the address guard, the fan-out worker.
//! - [`files`]: uploads in object storage (S3 or a local directory), thumbnails, signed links.
//! - [`jobs`]: background work any number of pods may run (the upload
//!   sweeper, the legacy adopter).
//! - [`config`], [`telemetry`]: typed settings, logs and metrics.
//!
//! # How it works
//! A REST handler or socket event authenticates a token into a `Principal`,
//! `Messaging` loads the `Actor`, checks the policy, writes through the
//! store (`omnibiz-store`, reached only from here), and then publishes an
//! `Envelope` on the `Bus`; gateways relay it to the sockets in the
//! conversation's room. The entities and JSON shapes are `omnibiz-domain`'s.

pub mod auth;
pub mod bus;
pub mod config;
pub mod files;
pub mod jobs;
pub mod limits;
pub mod linkcards;
pub mod messaging;
pub mod nodes;
pub mod notify;
pub mod overload;
pub mod presence;
pub mod telemetry;
pub mod webhooks;

pub use omnibiz_domain as domain;
