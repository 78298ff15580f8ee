//! `/api/messages/conversations…`: list, create-or-get, read one with its
//! messages, update metadata, mark all read.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use omnibiz_domain::ConversationPatch;
use omnibiz_domain::views::{ConversationView, MessageView};
use omnibiz_domain::{ConversationId, ConversationStatus, CustomerId, Priority};
use omnibiz_service::messaging::{ConversationPage, MessagePage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{AssignedParam, ListFilter, ListParams, ReadResponse};
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json, OptionalJson, Query};
use crate::openapi::{BadRequest, Forbidden, ReadErrors, Unauthorized, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/messages/conversations", get(list).post(open))
        .route("/api/messages/conversations/{id}", get(show).patch(update))
        .route("/api/messages/conversations/{id}/read", post(read_all))
        .route("/api/messages/conversations/{id}/archive", post(archive))
        .route("/api/messages/conversations/{id}/unarchive", post(unarchive))
        .route("/api/messages/conversations/{id}/assignee", axum::routing::put(assign))
}

pub(crate) fn conversation_id(raw: &str) -> ApiResult<ConversationId> {
    raw.parse().map_err(|e| ApiError::invalid(format!("conversation id: {e}")))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationsResponse {
    success: bool,
    conversations: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    /// The caller's conversations by their own archive, whatever the filter.
    counts: ListCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListCounts {
    active: u64,
    archived: u64,
    all: u64,
    /// The business side's open (not archived) conversations by assignee:
    /// the caller's, unassigned, and all the caller may see. Absent for customers.
    #[serde(skip_serializing_if = "Option::is_none")]
    assigned: Option<AssignedCounts>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AssignedCounts {
    mine: u64,
    unassigned: u64,
    all: u64,
}

/// The caller's conversations, most recent activity first.
#[utoipa::path(get, path = "/api/messages/conversations", tag = "conversations", params(ListParams),
    security(("bearer" = [])),
    responses((status = 200, body = ConversationsResponse), BadRequest, Unauthorized))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<ConversationsResponse>> {
    let page = ConversationPage {
        limit: p.limit.map(|l| usize::try_from(l).unwrap_or(0)),
        cursor: p.cursor,
        q: p.q,
        archived: ListFilter::archived(p.filter),
        assigned: AssignedParam::filter(p.assigned),
    };
    let (conversations, next_cursor) = s.messaging.list_conversations(&actor, page).await?;
    let c = s.messaging.conversation_counts(&actor).await?;
    let assigned = match actor.seat {
        Some(_) => {
            let a = s.messaging.assignment_counts(&actor).await?;
            Some(AssignedCounts { mine: a.mine, unassigned: a.unassigned, all: a.all })
        }
        None => None,
    };
    let counts = ListCounts { active: c.active, archived: c.archived, all: c.active + c.archived, assigned };
    Ok(Json(ConversationsResponse { success: true, conversations, next_cursor, counts }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenBody {
    /// Required for a business owner (400 without it); ignored for a customer,
    /// who may send no body at all. Which one applies depends on the token,
    /// which a schema cannot say.
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    customer_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConversationResponse {
    success: bool,
    conversation: ConversationView,
}

impl ConversationResponse {
    pub(crate) fn new(conversation: ConversationView) -> Self {
        Self { success: true, conversation }
    }
}

/// Create-or-get the conversation with a customer (owner) or with the
/// business that invited the caller (customer). 201 when created, 200 when it existed.
#[utoipa::path(post, path = "/api/messages/conversations", tag = "conversations", request_body(content = Option<OpenBody>),
    security(("bearer" = [])),
    responses((status = 201, body = ConversationResponse), (status = 200, body = ConversationResponse), ReadErrors))]
pub(crate) async fn open(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    OptionalJson(body): OptionalJson<OpenBody>,
) -> ApiResult<(StatusCode, Json<ConversationResponse>)> {
    let customer = body
        .and_then(|b| b.customer_id)
        .map(|c| c.parse::<CustomerId>().map_err(|e| ApiError::invalid(format!("customerId: {e}"))))
        .transpose()?;
    let (conversation, created) = s.messaging.open_conversation(&actor, customer).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ConversationResponse { success: true, conversation })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MessageParams {
    /// Page size; default 500, larger values are capped at 500.
    #[param(minimum = 1, maximum = 2147483647)]
    limit: Option<i32>,
    /// Only messages with a smaller `seq` (older page).
    before: Option<i64>,
    /// Only messages with a larger `seq` (catch up).
    after: Option<i64>,
    /// A page centred on this `seq` (jump to a quoted message); `before`/`after` are then ignored.
    #[param(minimum = 0)]
    around: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessagesResponse {
    success: bool,
    conversation: ConversationView,
    /// Oldest → newest.
    messages: Vec<MessageView>,
    /// More messages exist beyond this page in the paging direction.
    has_more: bool,
}

/// A conversation and a page of its messages (the latest page by default).
#[utoipa::path(get, path = "/api/messages/conversations/{id}", tag = "conversations", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), MessageParams),
    security(("bearer" = [])),
    responses((status = 200, body = MessagesResponse), ReadErrors, Forbidden))]
pub(crate) async fn show(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Query(p): Query<MessageParams>,
) -> ApiResult<Json<MessagesResponse>> {
    let id = conversation_id(&id)?;
    let page = MessagePage {
        limit: p.limit.map(|l| usize::try_from(l).unwrap_or(0)),
        before: p.before,
        after: p.after,
        around: p.around,
    };
    let (conversation, messages, has_more) = s.messaging.conversation_messages(&actor, id, page).await?;
    Ok(Json(MessagesResponse { success: true, conversation, messages, has_more }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    status: Option<ConversationStatus>,
    /// At most 20 tags, each 1–50 characters without leading or trailing spaces.
    #[schema(value_type = Option<Vec<Tag>>, max_items = 20)]
    tags: Option<Vec<String>>,
    priority: Option<Priority>,
}

/// One conversation tag.
#[derive(ToSchema)]
#[schema(pattern = "^\\S([\\s\\S]{0,48}\\S)?$")]
#[allow(dead_code)] // documentation only: tags are read as strings
pub(crate) struct Tag(String);

/// Change status (active/archived/blocked), tags or priority. Business owner only.
#[utoipa::path(patch, path = "/api/messages/conversations/{id}", tag = "conversations", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    request_body = PatchBody, security(("bearer" = [])),
    responses((status = 200, body = ConversationResponse), WriteErrors, UploadErrors))]
pub(crate) async fn update(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(body): Json<PatchBody>,
) -> ApiResult<Json<ConversationResponse>> {
    let id = conversation_id(&id)?;
    let patch = ConversationPatch { status: body.status, tags: body.tags, priority: body.priority };
    let conversation = s.messaging.update_conversation(&actor, id, patch).await?;
    Ok(Json(ConversationResponse { success: true, conversation }))
}

/// Mark every message of the conversation read for the caller.
#[utoipa::path(post, path = "/api/messages/conversations/{id}/read", tag = "conversations", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    security(("bearer" = [])),
    responses((status = 200, body = ReadResponse), ReadErrors, Forbidden))]
pub(crate) async fn read_all(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ReadResponse>> {
    let id = conversation_id(&id)?;
    let receipt = s.messaging.mark_read_up_to(&actor, id, None).await?;
    Ok(Json(ReadResponse::from(receipt)))
}

/// Archive the conversation for yourself: the other side's view is not
/// touched, and a new message from them brings it back. Your sockets hear
/// `conversation_updated`.
#[utoipa::path(post, path = "/api/messages/conversations/{id}/archive", tag = "conversations", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    security(("bearer" = [])),
    responses((status = 200, body = ConversationResponse), ReadErrors))]
pub(crate) async fn archive(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationResponse>> {
    let conversation = s.messaging.set_archived(&actor, conversation_id(&id)?, true).await?;
    Ok(Json(ConversationResponse { success: true, conversation }))
}

/// Bring an archived conversation back for yourself (for the business, this
/// also reopens a conversation whose `status` is `archived`).
#[utoipa::path(post, path = "/api/messages/conversations/{id}/unarchive", tag = "conversations", params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    security(("bearer" = [])),
    responses((status = 200, body = ConversationResponse), ReadErrors))]
pub(crate) async fn unarchive(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationResponse>> {
    let conversation = s.messaging.set_archived(&actor, conversation_id(&id)?, false).await?;
    Ok(Json(ConversationResponse { success: true, conversation }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AssignBody {
    /// The user id of the owner or a team member; null unassigns.
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    assignee: Option<String>,
}

/// Assign the conversation to someone of the business's team, or unassign
/// it (`assignee: null`). Owners and admins assign anyone; an agent takes an
/// unassigned conversation (`assignee` = themselves) or lets go of their own.
/// The team hears `conversation_assigned`.
#[utoipa::path(put, path = "/api/messages/conversations/{id}/assignee", tag = "team",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), request_body = AssignBody,
    security(("bearer" = [])),
    responses((status = 200, body = ConversationResponse), WriteErrors, UploadErrors))]
pub(crate) async fn assign(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> ApiResult<Json<ConversationResponse>> {
    let id = conversation_id(&id)?;
    let assignee =
        body.assignee.map(|a| a.parse().map_err(|e| ApiError::invalid(format!("assignee: {e}")))).transpose()?;
    let conversation = s.messaging.assign(&actor, id, assignee).await?;
    Ok(Json(ConversationResponse { success: true, conversation }))
}
