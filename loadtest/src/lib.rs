//! Load generator for OmniBiz Messaging and the Node.js peers (the binary
//! is `omnibiz-loadtest`; see its `--help`): `loadtest/peer/server.js`, the
//! seed's real-time layer without a database, and `loadtest/peer/seed.js`,
//! the seed's whole stack (Express + socket.io + Mongoose) storing every
//! message in the same database as ours. They speak the same events.
//!
//! # Layout
//! - `client`: a lean Socket.IO v5 / Engine.IO v4 websocket client.
//! - `connections`: hold N clients (several worker processes), measure server RSS/CPU
//!   and how long each connect took.
//! - `fanout`: open-loop senders (socket or REST) → receivers; HDR latency, losses, duplicates,
//!   and (`--db-pids`) the database's CPU per message, (`--db-uri`) its commands per message
//!   (`dbcommands`: the server's own counters); also one room with N receivers
//!   (`room`: every message delivered N times).
//! - `forwarding`: the cost of a polling request forwarded between gateways (no affinity).
//! - `redis_raw`: raw Redis pub/sub throughput, the physical limit.
//! - `raw_insert`: the database's insert rate for our message documents, the stored path's
//!   ceiling, and its CPU per insert and per send pair.
//! - `soak`: long mixed load with churn; memory and latency per window, losses.
//! - `report`: terminal and Markdown tables, the SVG latency plot.
//! - `tokens`, `procstat`: inputs and /proc sampling.

pub mod client;
pub mod connections;
pub mod dbcommands;
pub mod fanout;
pub mod forwarding;
pub mod notify;
pub mod procstat;
pub mod raw_insert;
pub mod redis_raw;
pub mod report;
pub mod soak;
pub mod tokens;
