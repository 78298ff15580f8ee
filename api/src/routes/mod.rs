//! One module per REST resource, each with its own `router()`, merged in [`router`].

pub(crate) mod conversations;
pub(crate) mod customers;
pub(crate) mod health;
pub(crate) mod messages;

use axum::Router;
use omnibiz_shared::service::ReadReceipt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().merge(conversations::router()).merge(messages::router()).merge(customers::router())
}

/// Result of a mark-read call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReadResponse {
    success: bool,
    conversation_id: String,
    /// The caller has read every message up to and including this `seq`.
    up_to_seq: i64,
    /// The caller's unread count after the call.
    unread_count: i64,
}

impl From<ReadReceipt> for ReadResponse {
    fn from(r: ReadReceipt) -> Self {
        Self { success: true, conversation_id: r.conversation_id, up_to_seq: r.up_to_seq, unread_count: r.unread_count }
    }
}
