//! `/api/quick-replies`: a business owner's saved replies (the seed's "chat
//! templates"), and sending one into a conversation.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use omnibiz_domain::QuickReplyId;
use omnibiz_service::messaging::{QuickReplyView, SendCommand};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::messages::{MessageResponse, SentResponse};
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::{BadRequest, Conflict, Forbidden, Unauthorized, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/quick-replies", get(list).post(create))
        .route("/api/quick-replies/{id}", patch(update).delete(remove))
        .route("/api/quick-replies/{id}/send", post(send))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse {
    success: bool,
    quick_replies: Vec<QuickReplyView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplyResponse {
    success: bool,
    quick_reply: QuickReplyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuickReplyDeleted {
    success: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct QuickReplyCreateBody {
    /// 1–32 of `a-z`, `0-9`, `-`, `_` (a leading `/` and capitals are accepted and dropped).
    #[schema(pattern = "^/?[A-Za-z0-9_-]{1,32}$")]
    shortcut: String,
    /// The reply: 1–5000 characters, like a message.
    #[schema(pattern = "[^\\s\\x00-\\x1f\\x7f-\\x9f]", max_length = 5000)]
    content: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct QuickReplyUpdateBody {
    #[schema(pattern = "^/?[A-Za-z0-9_-]{1,32}$")]
    shortcut: Option<String>,
    #[schema(pattern = "[^\\s\\x00-\\x1f\\x7f-\\x9f]", max_length = 5000)]
    content: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuickReplySendBody {
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    conversation_id: String,
    /// Idempotency key, as for `POST /api/messages/send`.
    #[schema(pattern = "^[!-~]{1,64}$")]
    client_message_id: Option<String>,
}

fn reply_id(raw: &str) -> ApiResult<QuickReplyId> {
    raw.parse().map_err(|e| ApiError::invalid(format!("quick reply id: {e}")))
}

/// Your quick replies, by shortcut (business owners only).
#[utoipa::path(get, path = "/api/quick-replies", tag = "quick replies", security(("bearer" = [])),
    responses((status = 200, body = ListResponse), Unauthorized, Forbidden))]
pub(crate) async fn list(State(s): State<ApiState>, Authed(actor): Authed) -> ApiResult<Json<ListResponse>> {
    let quick_replies = s.messaging.list_quick_replies(&actor).await?;
    Ok(Json(ListResponse { success: true, quick_replies }))
}

/// Save a quick reply; 409 when you already have that shortcut.
#[utoipa::path(post, path = "/api/quick-replies", tag = "quick replies", request_body = QuickReplyCreateBody, security(("bearer" = [])),
    responses((status = 201, body = ReplyResponse), BadRequest, Unauthorized, Forbidden, Conflict, UploadErrors))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<QuickReplyCreateBody>,
) -> ApiResult<(StatusCode, Json<ReplyResponse>)> {
    let quick_reply = s.messaging.create_quick_reply(&actor, &body.shortcut, &body.content).await?;
    Ok((StatusCode::CREATED, Json(ReplyResponse { success: true, quick_reply })))
}

/// Change a quick reply's shortcut or content.
#[utoipa::path(patch, path = "/api/quick-replies/{id}", tag = "quick replies", request_body = QuickReplyUpdateBody,
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = ReplyResponse), WriteErrors, Conflict, UploadErrors))]
pub(crate) async fn update(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(body): Json<QuickReplyUpdateBody>,
) -> ApiResult<Json<ReplyResponse>> {
    let id = reply_id(&id)?;
    let quick_reply =
        s.messaging.update_quick_reply(&actor, id, body.shortcut.as_deref(), body.content.as_deref()).await?;
    Ok(Json(ReplyResponse { success: true, quick_reply }))
}

/// Delete a quick reply.
#[utoipa::path(delete, path = "/api/quick-replies/{id}", tag = "quick replies",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = QuickReplyDeleted), WriteErrors))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<QuickReplyDeleted>> {
    s.messaging.delete_quick_reply(&actor, reply_id(&id)?).await?;
    Ok(Json(QuickReplyDeleted { success: true }))
}

/// Send a quick reply into a conversation (like `POST /api/messages/send`
/// with its content): 201, or 200 for a retry of a stored `clientMessageId`.
#[utoipa::path(post, path = "/api/quick-replies/{id}/send", tag = "quick replies", request_body = QuickReplySendBody,
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 201, body = MessageResponse), (status = 200, body = MessageResponse), WriteErrors, UploadErrors))]
pub(crate) async fn send(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(body): Json<QuickReplySendBody>,
) -> ApiResult<(StatusCode, Json<SentResponse>)> {
    let id = reply_id(&id)?;
    let content = s.messaging.quick_reply_content(&actor, &id.to_hex()).await?;
    let cmd = SendCommand::parse(&body.conversation_id, &content, Vec::new(), body.client_message_id.as_deref())?;
    Ok(MessageResponse::sent(s.messaging.send(&actor, cmd).await?))
}
