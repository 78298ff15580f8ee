//! OmniBiz REST API (axum).
//!
//! # Layout
//! - `routes/`: one module per resource (`conversations`, `messages`,
//!   `customers`, `account`, `health`), each with its own `router()`.
//! - [`console`]: the web console (owner inbox, customer chat) shipped in
//!   the binary from `api/console/`.
//! - `error`: [`ApiError`], the one error type, rendered as
//!   `{success:false, message, code}`.
//! - `extract`: `Json`/`Query` wrappers with rejections in that shape, and
//!   the `Authed` extractor (bearer token → verified principal → stored account).
//!
//! # How it works
//! Handlers are thin: extract, parse into domain types, call
//! [`omnibiz_service::messaging::Messaging`], map the result. The HTTP stack
//! adds request ids (`x-request-id`, generated when absent), a trace span per
//! request with the matched route, Prometheus metrics by matched route
//! (`http_requests_total`, `http_request_duration_seconds`), CORS (see
//! [`cors`]; the Socket.IO endpoint gets the same rules), a body
//! size limit and a request timeout. The OpenAPI document is served at
//! `/api/openapi.json` and rendered at `/api/docs`.

pub mod console;
pub mod cors;
pub mod error;
pub mod extract;
pub mod limits;
mod openapi;
mod routes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use omnibiz_service::auth::Verifier;
use omnibiz_service::messaging::Messaging;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_redoc::{Redoc, Servable as _};

use openapi::RateLimitedResponses;

pub use error::{ApiError, ApiResult};

/// Whether this process should receive traffic.
#[derive(Debug)]
pub struct Readiness {
    /// Why the store cannot be used yet; `None` once it can.
    store_blocked: std::sync::RwLock<Option<String>>,
    draining: AtomicBool,
}

impl Default for Readiness {
    fn default() -> Self {
        Self { store_blocked: std::sync::RwLock::new(Some("store not initialised yet".into())), draining: false.into() }
    }
}

impl Readiness {
    /// The store's schema/indexes are in place.
    pub fn set_store_initialised(&self) {
        *self.store_blocked.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
    /// The store cannot be used yet, and why (shown by `/readyz`).
    pub fn set_store_blocked(&self, reason: impl Into<String>) {
        *self.store_blocked.write().unwrap_or_else(|p| p.into_inner()) = Some(reason.into());
    }
    /// Shutting down: fail readiness so the load balancer stops sending traffic.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// `Ok` when ready; otherwise a reason an operator can act on.
    pub async fn check(&self, messaging: &Messaging) -> Result<(), String> {
        if self.is_draining() {
            return Err("shutting down".into());
        }
        let kind = messaging.store_kind();
        let blocked = self.store_blocked.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(reason) = blocked {
            return Err(format!("{kind}: {reason}"));
        }
        // The public answer names the component; the error text is logged.
        messaging.ping_store().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: {kind} store unreachable");
            format!("{kind} store unreachable")
        })?;
        let bus = messaging.bus();
        bus.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: {} bus unreachable", bus.kind());
            format!("{} bus unreachable", bus.kind())
        })
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub messaging: Messaging,
    pub verifier: Arc<Verifier>,
    pub metrics: PrometheusHandle,
    pub readiness: Arc<Readiness>,
}

/// HTTP-level settings of the router.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// `None` = any origin.
    pub cors_origins: Option<Vec<String>>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// The OpenAPI 3 document of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "OmniBiz Messaging API", description = "Seed-compatible REST API of OmniBiz Messaging. \
        Every response carries `success`; errors are `{success:false, message, code}`."),
    paths(
        routes::conversations::list, routes::conversations::open, routes::conversations::show,
        routes::conversations::update, routes::conversations::read_all, routes::conversations::archive,
        routes::conversations::unarchive,
        routes::messages::send, routes::messages::read, routes::customers::list, routes::account::me,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::show, routes::webhooks::update,
        routes::webhooks::remove, routes::webhooks::deliveries, routes::webhooks::redeliver,
        routes::messages::edit, routes::messages::delete, routes::attachments::upload, routes::attachments::links,
        routes::attachments::content, routes::attachments::thumbnail, routes::search::search,
        routes::quick_replies::list, routes::quick_replies::create, routes::quick_replies::update,
        routes::quick_replies::remove, routes::quick_replies::send, routes::sessions::revoke,
        routes::reactions::add, routes::reactions::remove,
        routes::notifications::push_key, routes::notifications::list, routes::notifications::subscribe,
        routes::notifications::unsubscribe, routes::notifications::preferences, routes::notifications::set_preferences,
        routes::notifications::inbound_email, routes::notifications::unsubscribe_email,
        routes::notifications::unsubscribe_page,
        routes::team::show, routes::team::add, routes::team::remove, routes::team::settings,
        routes::conversations::assign, routes::groups::create, routes::groups::members,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth, &RateLimitedResponses),
    tags((name = "conversations"), (name = "messages"), (name = "attachments"), (name = "quick replies"),
        (name = "customers"), (name = "account"), (name = "webhooks"), (name = "notifications"), (name = "team"), (name = "groups")),
)]
pub struct ApiDoc;

/// Counts and times every request by method, matched route and status.
async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    let labels = [("method", method), ("route", route), ("status", res.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    res
}

/// Only `/healthz`, `/readyz` and `/metrics` (for processes that serve no REST, like a gateway pod).
pub fn ops_router(state: ApiState) -> Router {
    routes::health::router().with_state(state)
}

/// The REST API with every HTTP layer. `extra` (e.g. the embedded gateway's
/// routes) is merged in before the layers, so it shares request ids and tracing.
pub fn router(state: ApiState, opts: &HttpOptions, extra: Router) -> Router {
    let openapi = ApiDoc::openapi();
    let docs = Router::new()
        .route("/api/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
        .merge(Redoc::with_url("/api/docs", openapi));
    let api = routes::router()
        .merge(routes::health::router())
        .route_layer(middleware::from_fn(track_http))
        .layer(DefaultBodyLimit::max(opts.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, opts.request_timeout))
        .layer(cors::layer(&opts.cors_origins))
        .with_state(state);
    let api = cors::guard(api, &opts.cors_origins);
    Router::new()
        .merge(api)
        .merge(docs)
        .merge(extra)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                let span = tracing::info_span!("http", method = %req.method(), route = route.as_deref().unwrap_or(req.uri().path()), request_id = %id);
                // A caller's trace (W3C `traceparent`) is continued.
                omnibiz_service::telemetry::follow(&span, req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
                span
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// Every schema the document refers to is in it (an unresolved
    /// reference breaks generated clients and Schemathesis alike).
    #[test]
    fn every_reference_in_the_openapi_document_resolves() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).expect("serialises");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.contains(&"#/components/schemas/AudioInfo"), "the attachment's audio is described");
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r} does not resolve");
        }
    }
}
