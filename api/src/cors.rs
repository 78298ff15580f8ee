//! Cross-origin access, the same for the REST API and the Socket.IO endpoint
//! (`CORS_ORIGINS`), behaving as socket.io's own `cors` option does:
//!
//! - `*` (the default): `Access-Control-Allow-Origin: *`, no credentials —
//!   any page may call us with a bearer token, none with cookies;
//! - a list of origins: a listed origin is echoed back with
//!   `Access-Control-Allow-Credentials: true` (`withCredentials: true`
//!   clients work) and `Vary: Origin`; any other origin is refused with 403
//!   and `{success:false, code:"ORIGIN_NOT_ALLOWED", message}` — for REST,
//!   for polling GET/POST and preflights, and for the websocket upgrade,
//!   where browsers enforce nothing themselves.
//!
//! Requests without an `Origin` header (servers, native apps, Node clients)
//! are never refused. Preflights answer with the methods we serve and the
//! headers the browser asked for, cached for ten minutes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};

/// The CORS response headers for `origins` (`None` = any origin).
pub fn layer(origins: &Option<Vec<String>>) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    match origins {
        None => base.allow_origin(Any),
        Some(list) => {
            let values: Vec<HeaderValue> = list.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
            base.allow_origin(AllowOrigin::list(values)).allow_credentials(true)
        }
    }
}

/// Refuses requests whose `Origin` is not listed (a no-op for `*`).
pub fn guard(router: Router, origins: &Option<Vec<String>>) -> Router {
    match origins {
        None => router,
        Some(list) => {
            let allowed: Arc<[String]> = list.iter().map(|o| o.trim_end_matches('/').to_owned()).collect();
            router.layer(middleware::from_fn(move |req: Request, next: Next| {
                let allowed = Arc::clone(&allowed);
                async move {
                    match req.headers().get(header::ORIGIN) {
                        Some(o) if !allowed.iter().any(|a| a.as_bytes() == o.as_bytes()) => {
                            refuse(&String::from_utf8_lossy(o.as_bytes()))
                        }
                        _ => next.run(req).await,
                    }
                }
            }))
        }
    }
}

fn refuse(origin: &str) -> Response {
    tracing::info!(origin, "refused a request from an origin not in CORS_ORIGINS");
    let body = serde_json::json!({
        "success": false,
        "code": "ORIGIN_NOT_ALLOWED",
        "message": format!("origin {origin} is not allowed (CORS_ORIGINS)"),
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// The Socket.IO router with the same CORS rules as the REST API.
pub fn for_sockets(router: Router, origins: &Option<Vec<String>>) -> Router {
    guard(router.layer(layer(origins)), origins)
}
