//! Emoji reactions on a message: `PUT` / `DELETE /api/messages/{messageId}/reactions/{emoji}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::put;
use omnibiz_domain::MessageId;

use super::messages::MessageResponse;
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::WriteErrors;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/messages/{message_id}/reactions/{emoji}", put(add).delete(remove))
}

async fn react(
    s: &ApiState,
    actor: &omnibiz_service::messaging::Actor,
    id: &str,
    emoji: &str,
    add: bool,
) -> ApiResult<Json<MessageResponse>> {
    let id: MessageId = id.parse().map_err(|e| ApiError::invalid(format!("message id: {e}")))?;
    let message = s.messaging.react(actor, id, emoji, add).await?;
    Ok(Json(MessageResponse::new(message)))
}

/// React to a message with an emoji (URL-encoded in the path, e.g. `%F0%9F%91%8D` for 👍).
/// One of each emoji per person (again is a no-op), at most 20 different
/// emoji per message; the room gets `reaction_added`. A reaction moves
/// neither the conversation's preview nor its unread counts.
#[utoipa::path(put, path = "/api/messages/{messageId}/reactions/{emoji}", tag = "messages",
    params(("messageId" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), ("emoji" = String, Path, description = "one emoji")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), WriteErrors))]
pub(crate) async fn add(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path((message_id, emoji)): Path<(String, String)>,
) -> ApiResult<Json<MessageResponse>> {
    react(&s, &actor, &message_id, &emoji, true).await
}

/// Take back your reaction (a no-op when there is none); the room gets `reaction_removed`.
#[utoipa::path(delete, path = "/api/messages/{messageId}/reactions/{emoji}", tag = "messages",
    params(("messageId" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), ("emoji" = String, Path, description = "one emoji")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), WriteErrors))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path((message_id, emoji)): Path<(String, String)>,
) -> ApiResult<Json<MessageResponse>> {
    react(&s, &actor, &message_id, &emoji, false).await
}
