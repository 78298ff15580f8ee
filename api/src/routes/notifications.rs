//! `/api/notifications`: Web Push subscriptions of the caller's browsers,
//! the key they subscribe with, and the caller's notification preferences
//! (how notifications travel: `omnibiz_service::notify`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get};
use omnibiz_domain::SubscriptionId;
use omnibiz_domain::notification::Preferences;
use omnibiz_service::messaging::{SubscribeCommand, SubscriptionView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::{BadRequest, Conflict, Forbidden, NotConfigured, ReadErrors, Unauthorized};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/notifications/push-key", get(push_key))
        .route("/api/notifications/subscriptions", get(list).post(subscribe))
        .route("/api/notifications/subscriptions/{id}", delete(unsubscribe))
        .route("/api/notifications/preferences", get(preferences).put(set_preferences))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushKeyResponse {
    success: bool,
    /// The VAPID public key: pass it to `pushManager.subscribe` as `applicationServerKey`.
    public_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionsResponse {
    success: bool,
    subscriptions: Vec<SubscriptionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionResponse {
    success: bool,
    subscription: SubscriptionView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Unsubscribed {
    success: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreferencesResponse {
    success: bool,
    preferences: Preferences,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SubscriptionKeys {
    /// The browser's P-256 public key, base64url.
    p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    auth: String,
}

/// `PushSubscription.toJSON()`, as the browser gives it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscribeBody {
    /// The push service's URL: `https://`, a public address.
    #[schema(max_length = 2048)]
    endpoint: String,
    keys: SubscriptionKeys,
    /// When the browser will drop the subscription (milliseconds since the epoch); ignored.
    #[allow(dead_code)]
    expiration_time: Option<f64>,
}

/// The key browsers subscribe with; 501 when Web Push is not configured.
#[utoipa::path(get, path = "/api/notifications/push-key", tag = "notifications",
    responses((status = 200, body = PushKeyResponse), NotConfigured))]
pub(crate) async fn push_key(State(s): State<ApiState>) -> ApiResult<Json<PushKeyResponse>> {
    Ok(Json(PushKeyResponse { success: true, public_key: s.messaging.push_public_key()? }))
}

/// Your subscribed browsers, oldest first.
#[utoipa::path(get, path = "/api/notifications/subscriptions", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = SubscriptionsResponse), Unauthorized))]
pub(crate) async fn list(State(s): State<ApiState>, Authed(actor): Authed) -> ApiResult<Json<SubscriptionsResponse>> {
    Ok(Json(SubscriptionsResponse { success: true, subscriptions: s.messaging.subscriptions(&actor).await? }))
}

/// Subscribe this browser: 201, or 200 when it was subscribed already
/// (its keys are updated). 409 past the number of browsers allowed per
/// person; 400 for keys that are not a browser's or an endpoint the
/// address guard refuses.
#[utoipa::path(post, path = "/api/notifications/subscriptions", tag = "notifications", request_body = SubscribeBody,
    security(("bearer" = [])),
    responses((status = 201, body = SubscriptionResponse), (status = 200, body = SubscriptionResponse), BadRequest,
        Unauthorized, Conflict, NotConfigured))]
pub(crate) async fn subscribe(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    headers: HeaderMap,
    Json(body): Json<SubscribeBody>,
) -> ApiResult<(StatusCode, Json<SubscriptionResponse>)> {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let cmd = SubscribeCommand { endpoint: body.endpoint, p256dh: body.keys.p256dh, auth: body.keys.auth, user_agent };
    let (subscription, created) = s.messaging.subscribe(&actor, cmd).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SubscriptionResponse { success: true, subscription })))
}

/// Unsubscribe one of your browsers.
#[utoipa::path(delete, path = "/api/notifications/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = Unsubscribed), ReadErrors))]
pub(crate) async fn unsubscribe(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Unsubscribed>> {
    let id: SubscriptionId = id.parse().map_err(|e| ApiError::invalid(format!("subscription id: {e}")))?;
    s.messaging.unsubscribe(&actor, id).await?;
    Ok(Json(Unsubscribed { success: true }))
}

/// Your notification preferences (every channel on until you change them).
#[utoipa::path(get, path = "/api/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = PreferencesResponse), Unauthorized))]
pub(crate) async fn preferences(
    State(s): State<ApiState>,
    Authed(actor): Authed,
) -> ApiResult<Json<PreferencesResponse>> {
    Ok(Json(PreferencesResponse { success: true, preferences: s.messaging.notification_preferences(&actor).await? }))
}

/// Replace your notification preferences (fields left out take their
/// defaults). `emailDelaySecs` and `quietHours` are a business owner's.
#[utoipa::path(put, path = "/api/notifications/preferences", tag = "notifications", request_body = Preferences,
    security(("bearer" = [])),
    responses((status = 200, body = PreferencesResponse), BadRequest, Unauthorized, Forbidden))]
pub(crate) async fn set_preferences(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<Preferences>,
) -> ApiResult<Json<PreferencesResponse>> {
    let preferences = s.messaging.set_notification_preferences(&actor, body).await?;
    Ok(Json(PreferencesResponse { success: true, preferences }))
}
