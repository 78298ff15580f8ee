//! `GET /api/messages/search`: full-text search over the caller's messages.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use omnibiz_service::messaging::SearchHit;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::{Authed, Json, Query};
use crate::openapi::{BadRequest, Unauthorized};

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/messages/search", get(search))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Words (each matches words starting with it) and `"quoted phrases"`;
    /// every one must match. At most 200 characters; the first 8 terms count;
    /// without a letter or digit, nothing is found.
    #[param(min_length = 1, max_length = 200)]
    q: String,
    /// Page size; default and maximum 50.
    #[param(minimum = 1, maximum = 2147483647)]
    limit: Option<i32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^[0-9]{1,13}_[0-9a-fA-F]{24}$")]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchResponse {
    success: bool,
    /// Newest first.
    results: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Search the caller's messages: a business owner's across all their
/// customers' conversations, a customer's in their own. Deleted messages
/// are never found. Each result has the message, its conversation, and a
/// snippet with the matches as character ranges.
#[utoipa::path(get, path = "/api/messages/search", tag = "messages", params(SearchParams), security(("bearer" = [])),
    responses((status = 200, body = SearchResponse), BadRequest, Unauthorized))]
pub(crate) async fn search(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Query(p): Query<SearchParams>,
) -> ApiResult<Json<SearchResponse>> {
    let limit = p.limit.map(|l| usize::try_from(l.max(0)).unwrap_or(0));
    let (results, next_cursor) = s.messaging.search_messages(&actor, &p.q, p.cursor.as_deref(), limit).await?;
    Ok(Json(SearchResponse { success: true, results, next_cursor }))
}
