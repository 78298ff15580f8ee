//! Logging (tracing) and the Prometheus recorder, set up once per process.
//!
//! Metric names follow `<subsystem>_<what>_<unit>`; see the operations guide
//! for the full list.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` wins over `default_level`.
/// Calling it twice is harmless (the second call does nothing).
pub fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true))
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_target(false)).try_init(),
    };
}

/// Every metric the binaries export: name, kind, meaning. The operations guide
/// and the Grafana dashboard use these names; a test checks they match.
pub const METRICS: &[(&str, &str, &str)] = &[
    ("http_requests_total", "counter", "HTTP requests by method, matched route and status"),
    ("http_request_duration_seconds", "histogram", "HTTP request duration by method, matched route and status"),
    ("gateway_connections", "gauge", "Socket.IO connections held by this gateway"),
    (
        "gateway_connections_refused_total",
        "counter",
        "connection attempts refused, by reason (auth, capacity, draining, rate, ip_rate, handshake_timeout)",
    ),
    ("gateway_sessions_ended_total", "counter", "sockets ended with session_ended, by reason (token_expired, revoked)"),
    ("gateway_sessions_refreshed_total", "counter", "refresh_token calls that extended a session"),
    ("gateway_joins_total", "counter", "successful join_conversation events"),
    ("gateway_events_in_total", "counter", "client events received, by event name"),
    ("gateway_events_out_total", "counter", "events sent to clients, by event name"),
    ("gateway_subscriptions", "gauge", "bus topics (Redis channels) this gateway is subscribed to"),
    ("gateway_delivery_latency_seconds", "histogram", "publish → local fan-out latency of new messages"),
    (
        "gateway_handshake_duration_seconds",
        "histogram",
        "connection opened → its first Socket.IO CONNECT accepted (bounded by the 45 s handshake deadline)",
    ),
    ("gateway_slow_clients_dropped_total", "counter", "clients disconnected because their outgoing buffer was full"),
    ("gateway_rate_limited_total", "counter", "events refused by the per-principal rate limits, by event"),
    ("gateway_typing_expired_total", "counter", "typing states ended by the server-side 3 s expiry"),
    ("gateway_bus_lagged_total", "counter", "bus events the gateway's dispatcher missed by lagging"),
    (
        "gateway_resyncs_total",
        "counter",
        "passes re-fetching from the store what local rooms missed while the bus was away",
    ),
    ("gateway_draining", "gauge", "1 while this gateway drains connections on shutdown"),
    (
        "gateway_gaps_skipped_total",
        "counter",
        "missing seqs a room stopped waiting for (taken but never stored) before sending what followed",
    ),
    (
        "gateway_late_deliveries_total",
        "counter",
        "messages delivered after higher seqs because their write outlasted the gap wait",
    ),
    ("messages_stored_total", "counter", "messages stored (not counting idempotent retries)"),
    ("bus_publish_errors_total", "counter", "bus publishes that failed (data is stored; clients recover by seq)"),
    ("bus_redis_errors_total", "counter", "Redis command errors (publish, subscribe, presence)"),
    ("bus_messages_lagged_total", "counter", "Redis messages dropped because the reader lagged"),
    ("bus_bad_envelopes_total", "counter", "undecodable envelopes received from Redis"),
    ("bus_resubscribes_total", "counter", "times every subscription was restored after a Redis (re)connection"),
    ("store_errors_total", "counter", "store (MongoDB/SQLite) errors, by backend"),
    (
        "store_insert_batch_size",
        "histogram",
        "messages per insertMany of the MongoDB store's group commit (1 at low load)",
    ),
    (
        "legacy_messages_adopted_total",
        "counter",
        "messages the Node.js service stored that this pod numbered and published (rolling migration)",
    ),
    (
        "legacy_adopter_lag_seconds",
        "gauge",
        "age of the oldest message the last adopter pass numbered (0 when it found none): how long Node's messages wait to go live",
    ),
    ("legacy_adopter_errors_total", "counter", "adopter passes that failed (retried on the next tick)"),
    ("webhook_events_total", "counter", "webhook outbox events fanned out into deliveries, by type"),
    ("webhook_attempts_total", "counter", "webhook delivery attempts, by outcome (success, failure)"),
    ("webhook_attempt_duration_seconds", "histogram", "time from sending a webhook to its response"),
    ("webhook_rate_limited_total", "counter", "webhook deliveries deferred by the per-owner rate limit"),
    ("webhook_endpoints_disabled_total", "counter", "webhook endpoints disabled after failing"),
    ("uploads_stored_total", "counter", "files uploaded and stored"),
    ("uploads_refused_total", "counter", "uploads refused (type, size, undecodable image, broken stream)"),
    ("uploads_swept_total", "counter", "uploads never attached to a message, deleted by the sweeper"),
];

/// Describes every metric and registers the label-less ones at zero
/// (counters, gauges, and histograms with empty buckets), so dashboards show
/// 0 rather than "no data" before the first event.
pub fn register_metrics() {
    for (name, kind, help) in METRICS {
        let name: &'static str = name;
        let help: &'static str = help;
        match *kind {
            "counter" => {
                metrics::describe_counter!(name, help);
                if !name.starts_with("http_") && !name.contains("_in_") && !name.contains("_out_") {
                    metrics::counter!(name).absolute(0);
                }
            }
            "gauge" => {
                metrics::describe_gauge!(name, help);
                metrics::gauge!(name).increment(0.0);
            }
            _ => {
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
                // A registered histogram renders (all buckets 0) before its first sample.
                if !name.starts_with("http_") {
                    let _ = metrics::histogram!(name);
                }
            }
        }
    }
}

/// Latency buckets in seconds: 0.5 ms … 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Handshake buckets in seconds, up to the 45 s deadline.
const HANDSHAKE_BUCKETS: &[f64] = &[0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0];

/// The process-wide Prometheus recorder (installed on first use).
/// The text of a scrape: every registered metric, plus the process's own
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_threads`, … named as
/// Prometheus's own client libraries name them), read at each scrape.
pub fn render_metrics(handle: &PrometheusHandle) -> String {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS
        .get_or_init(|| {
            let c = metrics_process::Collector::default();
            c.describe();
            c
        })
        .collect();
    handle.render()
}

pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A `Full` matcher wins over a `Suffix` one (the exporter tries them in that order).
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("gateway_handshake_duration_seconds".into()),
                        HANDSHAKE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is already global (e.g. in a test harness):
                // keep a private one so /metrics still renders.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
