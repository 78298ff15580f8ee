//! `/api/notifications`: Web Push subscriptions of the caller's browsers,
//! the key they subscribe with, and the caller's notification preferences
//! (how notifications travel: `omnibiz_service::notify`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Html;
use axum::routing::{delete, get, post};
use base64::Engine as _;
use omnibiz_domain::SubscriptionId;
use omnibiz_domain::notification::Preferences;
use omnibiz_service::messaging::{SubscribeCommand, SubscriptionView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::messages::{MessageResponse, SentResponse};
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json, Query};
use crate::openapi::{
    BadRequest, Conflict, Forbidden, NotConfigured, ReadErrors, Unauthorized, UploadErrors, WriteErrors,
};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/notifications/push-key", get(push_key))
        .route("/api/notifications/subscriptions", get(list).post(subscribe))
        .route("/api/notifications/subscriptions/{id}", delete(unsubscribe))
        .route("/api/notifications/preferences", get(preferences).put(set_preferences))
        .route("/api/notifications/inbound-email", post(inbound_email))
        .route("/api/notifications/unsubscribe", get(unsubscribe_page).post(unsubscribe_email))
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
        Unauthorized, Conflict, NotConfigured, UploadErrors))]
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
    responses((status = 200, body = PreferencesResponse), BadRequest, Unauthorized, Forbidden, UploadErrors))]
pub(crate) async fn set_preferences(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<Preferences>,
) -> ApiResult<Json<PreferencesResponse>> {
    let preferences = s.messaging.set_notification_preferences(&actor, body).await?;
    Ok(Json(PreferencesResponse { success: true, preferences }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct UnsubscribeQuery {
    /// The token of the email's unsubscribe link.
    #[param(pattern = "^[0-9a-f]{26}\\.[0-9a-f]{20}$")]
    t: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnsubscribedEmail {
    success: bool,
}

/// The inbound secret from `Authorization: Bearer <secret>` or a basic-auth password.
fn inbound_credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(_, password)| password.to_owned())
}

/// An emailed reply, as the mail provider forwards it: the raw message
/// (`message/rfc822`). Stored as a message from the person its signed
/// reply address names and delivered live (201). 400: not an email, no
/// reply address of ours, an automatic reply, nothing new above the
/// quote; 403: a forged or expired address, or a `From` that is not its
/// person's; 409: the same email again (`Message-ID`); 401: the inbound
/// secret is missing or wrong (when one is configured); 404: reply by
/// email is off on this server.
#[utoipa::path(post, path = "/api/notifications/inbound-email", tag = "notifications",
    request_body(content = String, content_type = "message/rfc822"),
    responses((status = 201, body = MessageResponse), WriteErrors, Conflict, UploadErrors))]
pub(crate) async fn inbound_email(
    State(s): State<ApiState>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<SentResponse>)> {
    let sent = s.messaging.reply_by_email(&raw, inbound_credential(&headers).as_deref()).await?;
    Ok(MessageResponse::sent(sent))
}

/// One-click unsubscribe (RFC 8058): the mail client posts
/// `List-Unsubscribe=One-Click` here; email notifications are turned off.
#[utoipa::path(post, path = "/api/notifications/unsubscribe", tag = "notifications", params(UnsubscribeQuery),
    responses((status = 200, body = UnsubscribedEmail), BadRequest, Forbidden, ReadErrors))]
pub(crate) async fn unsubscribe_email(
    State(s): State<ApiState>,
    Query(q): Query<UnsubscribeQuery>,
) -> ApiResult<Json<UnsubscribedEmail>> {
    s.messaging.unsubscribe_email(&q.t).await?;
    Ok(Json(UnsubscribedEmail { success: true }))
}

/// The unsubscribe link opened in a browser: a page with a button (a
/// `GET` changes nothing, so link scanners do not unsubscribe anyone).
#[utoipa::path(get, path = "/api/notifications/unsubscribe", tag = "notifications", params(UnsubscribeQuery),
    responses((status = 200, description = "An HTML page with the button", content_type = "text/html"), BadRequest))]
pub(crate) async fn unsubscribe_page(Query(q): Query<UnsubscribeQuery>) -> ApiResult<Html<String>> {
    let token = q.t.trim();
    let well_formed = token.split_once('.').is_some_and(|(data, mac)| {
        data.len() == 26 && mac.len() == 20 && (data.bytes().chain(mac.bytes())).all(|b| b.is_ascii_hexdigit())
    });
    if !well_formed {
        return Err(ApiError::invalid("t: not an unsubscribe token (the link in the email)"));
    }
    Ok(Html(format!(
        "<!doctype html><meta charset=utf-8><title>Stop emails</title>\
         <form method=post action=\"/api/notifications/unsubscribe?t={token}\" \
         onsubmit=\"event.preventDefault();fetch(this.action,{{method:'POST'}}).then(r=>this.outerHTML=r.ok?'<p>Done: no more emails.</p>':'<p>That link did not work.</p>')\">\
         <p>Stop notification emails from this conversation service?</p><button>Stop emails</button></form>"
    )))
}
