//! `/api/webhooks…`: a business owner's webhook endpoints, their delivery
//! logs and manual redelivery (how deliveries work: `omnibiz_service::webhooks`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use omnibiz_domain::EndpointId;
use omnibiz_service::messaging::webhooks::{DeliveryView, EndpointInput, EndpointView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json, Query};
use crate::openapi::{BadRequest, Forbidden, Unauthorized, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/webhooks", get(list).post(create))
        .route("/api/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/api/webhooks/{id}/deliveries", get(deliveries))
        .route("/api/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
}

fn endpoint_id(raw: &str) -> ApiResult<EndpointId> {
    raw.parse().map_err(|e| ApiError::invalid(format!("webhook id: {e}")))
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// `https://…` (or `http://`); private, loopback and link-local addresses are refused unless the operator allows them.
    url: String,
    /// Event types to receive; default all: `message.created`, `message.read`, `message.unread`,
    /// `message.updated`, `message.deleted`, `conversation.created`, `conversation.updated`.
    events: Option<Vec<String>>,
    /// At most 200 characters.
    description: Option<String>,
    /// Default true.
    enabled: Option<bool>,
}

/// Changes to an endpoint; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    /// `true` re-enables an endpoint disabled after failures and resumes its paused deliveries.
    enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedResponse {
    success: bool,
    webhook: EndpointView,
    /// The signing secret. Shown only here: store it now.
    secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookResponse {
    success: bool,
    webhook: EndpointView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhooksResponse {
    success: bool,
    webhooks: Vec<EndpointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedResponse {
    success: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveriesResponse {
    success: bool,
    deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryResponse {
    success: bool,
    delivery: DeliveryView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// Page size; default 50, larger values are capped at 200.
    #[param(minimum = 1, maximum = 2147483647)]
    limit: Option<i32>,
    /// `nextCursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// Create a webhook endpoint. Business owners only. The response carries the signing secret, once.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateBody, security(("bearer" = [])),
    responses((status = 201, body = CreatedResponse), BadRequest, Unauthorized, Forbidden, UploadErrors))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(b): Json<CreateBody>,
) -> ApiResult<(StatusCode, Json<CreatedResponse>)> {
    let input = EndpointInput { url: Some(b.url), events: b.events, description: b.description, enabled: b.enabled };
    let (webhook, secret) = s.messaging.create_endpoint(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(CreatedResponse { success: true, webhook, secret })))
}

/// The caller's webhook endpoints. Business owners only.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhooksResponse), Unauthorized, Forbidden))]
pub(crate) async fn list(State(s): State<ApiState>, Authed(actor): Authed) -> ApiResult<Json<WebhooksResponse>> {
    Ok(Json(WebhooksResponse { success: true, webhooks: s.messaging.list_endpoints(&actor).await? }))
}

/// One endpoint, with `disabledReason` when deliveries kept failing.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = WebhookResponse), WriteErrors))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookResponse>> {
    let webhook = s.messaging.endpoint(&actor, endpoint_id(&id)?).await?;
    Ok(Json(WebhookResponse { success: true, webhook }))
}

/// Change an endpoint's URL, events, description, or enable/disable it.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), request_body = UpdateBody,
    security(("bearer" = [])),
    responses((status = 200, body = WebhookResponse), WriteErrors, UploadErrors))]
pub(crate) async fn update(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(b): Json<UpdateBody>,
) -> ApiResult<Json<WebhookResponse>> {
    let input = EndpointInput { url: b.url, events: b.events, description: b.description, enabled: b.enabled };
    let webhook = s.messaging.update_endpoint(&actor, endpoint_id(&id)?, input).await?;
    Ok(Json(WebhookResponse { success: true, webhook }))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = DeletedResponse), WriteErrors))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedResponse>> {
    s.messaging.delete_endpoint(&actor, endpoint_id(&id)?).await?;
    Ok(Json(DeletedResponse { success: true }))
}

/// An endpoint's deliveries, newest first, each with its attempt log.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), DeliveryParams),
    security(("bearer" = [])),
    responses((status = 200, body = DeliveriesResponse), WriteErrors))]
pub(crate) async fn deliveries(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Query(p): Query<DeliveryParams>,
) -> ApiResult<Json<DeliveriesResponse>> {
    let (deliveries, next_cursor) = s
        .messaging
        .deliveries(&actor, endpoint_id(&id)?, p.cursor.as_deref(), p.limit.map(|l| usize::try_from(l).unwrap_or(0)))
        .await?;
    Ok(Json(DeliveriesResponse { success: true, deliveries, next_cursor }))
}

/// Send a delivery again now: same event id and body, a new attempt in its log.
#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), ("delivery" = String, Path, pattern = "^[a-z]+_[0-9a-f]{24}\\.[0-9a-f]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = DeliveryResponse), WriteErrors))]
pub(crate) async fn redeliver(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryResponse>> {
    let delivery = s.messaging.redeliver(&actor, endpoint_id(&id)?, &delivery).await?;
    Ok(Json(DeliveryResponse { success: true, delivery }))
}
