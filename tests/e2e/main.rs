//! End-to-end tests: one test binary for every test that needs the whole
//! application, real servers or other processes (Redis and a Redis Cluster,
//! the MongoDB-compatible server, several gateways, the official Node.js
//! client, the seed's Mongoose models, headless Chromium, an S3-protocol
//! server, HTTP receivers). `scripts/test.sh` starts what they need.
//!
//! One binary instead of one per file: the workspace links it once. Tests of
//! one binary share a process, so a test that reads a process-wide metric
//! reads it from a process of its own (see `gateway::metric_at`).

#[macro_use]
mod common;

mod api;
mod archiving;
mod attachments;
mod balancers;
mod browser;
mod chaos;
mod cluster;
mod console;
mod email;
mod exhaustion;
mod gateway;
mod hardening;
mod legacy;
mod limits;
mod link_previews;
mod loadtest_smoke;
mod no_affinity;
mod node_client;
mod operations;
mod overload;
mod prometheus;
mod push;
mod rate_limits;
mod reactions;
mod redis_reconnect;
mod replies;
mod search_and_replies;
mod sessions;
mod sio_fuzz;
mod stored_path;
mod targets;
mod teams;
mod traces;
mod voice;
mod webhooks;
