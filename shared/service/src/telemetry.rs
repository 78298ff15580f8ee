//! Logging (tracing) and the Prometheus recorder, set up once per process.
//!
//! Metric names follow `<subsystem>_<what>_<unit>`; see the operations guide
//! for the full list.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Where traces go (see [`init_tracing`]).
#[derive(Debug, Clone)]
pub struct Otlp {
    /// OTLP/HTTP endpoint; `/v1/traces` is added.
    pub endpoint: String,
    /// `service.name` of this process's spans (`omnibiz-api`, `omnibiz-gateway`, …).
    pub service: String,
    /// Share of new traces kept (parent-based: a sampled parent is followed).
    pub sample_ratio: f64,
}

/// Set once spans are exported: only then do publishes carry a
/// `traceparent` (the hot path pays nothing otherwise).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Flushes the spans still batched when dropped (at the end of `main`).
#[must_use = "dropping it flushes and stops the trace exporter"]
pub struct TracingGuard(Option<SdkTracerProvider>);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("flushing traces: {e}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` wins over `default_level`.
/// With `otlp`, spans are also exported as OpenTelemetry traces.
/// Calling it twice is harmless (the second call does nothing).
pub fn init_tracing(format: LogFormat, default_level: &str, otlp: Option<&Otlp>) -> TracingGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (provider, otel) = match otlp.map(tracer_provider).transpose() {
        Ok(Some(p)) => {
            let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("omnibiz"));
            (Some(p), Some(layer))
        }
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("traces are off: {e:#}");
            (None, None)
        }
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true))
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_target(false)).try_init(),
    };
    if installed.is_ok() && provider.is_some() {
        EXPORTING.store(true, Ordering::Release);
    }
    TracingGuard(provider)
}

fn tracer_provider(o: &Otlp) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = format!("{}/v1/traces", o.endpoint.trim_end_matches('/').trim_end_matches("/v1/traces"));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(&endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("the OTLP exporter for {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(o.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(o.service.clone()).build())
        .build())
}

/// The current span's W3C `traceparent`, when traces are exported and the
/// span is sampled: what a bus envelope carries to the gateways (written by
/// the SDK's W3C Trace Context propagator).
pub fn traceparent() -> Option<String> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The remote span a W3C `traceparent` names, read by the SDK's propagator
/// (`None` when it does not parse).
fn remote(traceparent: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of the remote span `traceparent` names (a bus
/// envelope's, a request header's); nothing when traces are off or the
/// value does not parse.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    if let Some(cx) = traceparent.and_then(remote) {
        let _ = span.set_parent(cx);
    }
}

/// Whether spans are exported (so callers can skip building spans nobody reads).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
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
    ("assignments_total", "counter", "conversations assigned, reassigned or unassigned within a business's team"),
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
    (
        "sends_overloaded_total",
        "counter",
        "sends refused (503 / ack OVERLOADED) because the stored path was saturated; nothing was stored",
    ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_followed_only_when_well_formed() {
        let cx = remote("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        let span = cx.span();
        let sc = span.span_context();
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn nothing_is_carried_while_traces_are_off() {
        let span = tracing::info_span!("x");
        assert_eq!(span.in_scope(traceparent), None);
    }
}
