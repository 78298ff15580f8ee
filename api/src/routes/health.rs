//! `/healthz` (the process runs), `/readyz` (it can serve: store reachable,
//! not draining) and `/metrics` (Prometheus text format).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"success": true, "status": "ok"}))
}

async fn readyz(State(s): State<ApiState>) -> impl IntoResponse {
    match s.readiness.check(&s.messaging).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"success": true, "status": "ready"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"success": false, "status": "not ready", "message": reason, "code": "NOT_READY"})),
        ),
    }
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], omnibiz_service::telemetry::render_metrics(&s.metrics))
}
