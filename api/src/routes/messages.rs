//! `/api/messages/send`, `/api/messages/{messageId}/read`, and editing and
//! deleting a message (`PATCH` / `DELETE /api/messages/{messageId}`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{AttachmentInput, MessageId};
use omnibiz_service::messaging::SendCommand;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::ReadResponse;
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::{Forbidden, ReadErrors, Unavailable, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/messages/send", post(send))
        .route("/api/messages/{message_id}/read", post(read))
        .route("/api/messages/{message_id}", patch(edit).delete(delete))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendBody {
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    conversation_id: String,
    /// 1–5000 characters after trimming and removing control characters
    /// (so at least one visible one); `message` is accepted as an alias.
    #[serde(alias = "message")]
    #[schema(pattern = "[^\\s\\x00-\\x1f\\x7f-\\x9f]", max_length = 5000)]
    content: String,
    /// At most 10: uploads by `{id}` (see `POST …/attachments`) or links `{url, type, name, size}`.
    #[serde(default)]
    #[schema(max_items = 10)]
    attachments: Vec<AttachmentInput>,
    /// Idempotency key: a retry with the same value returns the stored message.
    #[schema(pattern = "^[!-~]{1,64}$")]
    client_message_id: Option<String>,
    /// The id of an earlier message of this conversation to reply to (quoted in `replyTo`).
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    reply_to: Option<String>,
    /// An internal note for the business's team: never shown to the customer
    /// (a customer's `true` is refused with 403).
    #[serde(default)]
    is_private: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageResponse {
    success: bool,
    message: MessageView,
}

/// A [`MessageResponse`] around the message's JSON as the service encoded it
/// (once, for the bus too): the same body, without encoding the message again.
#[derive(Debug, Serialize)]
pub(crate) struct SentResponse {
    success: bool,
    message: Box<serde_json::value::RawValue>,
}

impl MessageResponse {
    pub(crate) fn new(message: MessageView) -> Self {
        Self { success: true, message }
    }

    /// 201 with the message when it was stored now, 200 for a retry of a stored `clientMessageId`.
    pub(crate) fn sent(sent: omnibiz_service::messaging::Sent) -> (StatusCode, Json<SentResponse>) {
        let status = if sent.created { StatusCode::CREATED } else { StatusCode::OK };
        (status, Json(SentResponse { success: true, message: sent.json }))
    }
}

/// Send a message. 201 when stored, 200 when it is a retry of a stored `clientMessageId`;
/// 503 `OVERLOADED` (with `Retry-After`) when the server is saturated: nothing was
/// stored, retry with the same `clientMessageId`.
#[utoipa::path(post, path = "/api/messages/send", tag = "messages", request_body = SendBody, security(("bearer" = [])),
    responses((status = 201, body = MessageResponse), (status = 200, body = MessageResponse), WriteErrors, UploadErrors, Unavailable))]
pub(crate) async fn send(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<SendBody>,
) -> ApiResult<(StatusCode, Json<SentResponse>)> {
    let cmd =
        SendCommand::parse(&body.conversation_id, &body.content, body.attachments, body.client_message_id.as_deref())?
            .replying_to(body.reply_to.as_deref())?
            .private(body.is_private);
    Ok(MessageResponse::sent(s.messaging.send(&actor, cmd).await?))
}

/// Mark this message and every earlier one read for the caller.
#[utoipa::path(post, path = "/api/messages/{messageId}/read", tag = "messages", params(("messageId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    security(("bearer" = [])),
    responses((status = 200, body = ReadResponse), ReadErrors, Forbidden))]
pub(crate) async fn read(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(message_id): Path<String>,
) -> ApiResult<Json<ReadResponse>> {
    let id: MessageId = message_id.parse().map_err(|e| ApiError::invalid(format!("message id: {e}")))?;
    let receipt = s.messaging.mark_read(&actor, id).await?;
    Ok(Json(ReadResponse::from(receipt)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EditBody {
    /// The new content: 1–5000 characters, like a send; `message` is accepted as an alias.
    #[serde(alias = "message")]
    #[schema(pattern = "[^\\s\\x00-\\x1f\\x7f-\\x9f]", max_length = 5000)]
    content: String,
}

/// Edit your own message within the edit window (`OMNIBIZ_EDIT_WINDOW_SECS`);
/// the room gets `message_updated`.
#[utoipa::path(patch, path = "/api/messages/{messageId}", tag = "messages", params(("messageId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    request_body = EditBody, security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), WriteErrors, UploadErrors))]
pub(crate) async fn edit(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(message_id): Path<String>,
    Json(body): Json<EditBody>,
) -> ApiResult<Json<MessageResponse>> {
    let id: MessageId = message_id.parse().map_err(|e| ApiError::invalid(format!("message id: {e}")))?;
    let message = s.messaging.edit_message(&actor, id, &body.content).await?;
    Ok(Json(MessageResponse { success: true, message }))
}

/// Delete your own message within the edit window: its content and files
/// are removed from storage, history keeps `isDeleted: true` in its place,
/// and the room gets `message_deleted`.
#[utoipa::path(delete, path = "/api/messages/{messageId}", tag = "messages", params(("messageId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), WriteErrors))]
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(message_id): Path<String>,
) -> ApiResult<Json<MessageResponse>> {
    let id: MessageId = message_id.parse().map_err(|e| ApiError::invalid(format!("message id: {e}")))?;
    let message = s.messaging.delete_message(&actor, id).await?;
    Ok(Json(MessageResponse { success: true, message }))
}
