//! `/api/groups…`: group conversations — the business's team and several of its customers.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{patch, post};
use omnibiz_domain::CustomerId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::conversations::{ConversationResponse, conversation_id};
use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::{UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/groups", post(create)).route("/api/groups/{id}/members", patch(members))
}

/// A customer's id: 24 hexadecimal characters (a list item with a pattern,
/// which `Vec<String>` cannot carry).
#[derive(Debug, Deserialize)]
pub(crate) struct CustomerIdText(String);

impl utoipa::PartialSchema for CustomerIdText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-fA-F]{24}$"))
            .into()
    }
}

impl ToSchema for CustomerIdText {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateGroupBody {
    /// 1–100 characters.
    #[schema(max_length = 100, pattern = "\\S")]
    title: String,
    /// 1–50 customers of your business.
    #[schema(min_items = 1, max_items = 50)]
    customer_ids: Vec<CustomerIdText>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MembersBody {
    /// Customers of your business to add.
    #[serde(default)]
    #[schema(max_items = 50)]
    add: Vec<CustomerIdText>,
    /// Members to remove.
    #[serde(default)]
    #[schema(max_items = 50)]
    remove: Vec<CustomerIdText>,
}

fn customers(raw: &[CustomerIdText], field: &str) -> ApiResult<Vec<CustomerId>> {
    raw.iter().map(|c| c.0.parse().map_err(|e| ApiError::invalid(format!("{field}: {e}")))).collect()
}

/// Create a group conversation of your business with some of its customers
/// (business side only). Its history starts with a system record; each
/// customer reads, and counts unread, for themselves.
#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = CreateGroupBody, security(("bearer" = [])),
    responses((status = 201, body = ConversationResponse), WriteErrors, UploadErrors))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<CreateGroupBody>,
) -> ApiResult<(StatusCode, Json<ConversationResponse>)> {
    if body.customer_ids.is_empty() {
        return Err(ApiError::invalid("customerIds: at least one customer"));
    }
    let ids = customers(&body.customer_ids, "customerIds")?;
    let conversation = s.messaging.create_group(&actor, &body.title, &ids).await?;
    Ok((StatusCode::CREATED, Json(ConversationResponse::new(conversation))))
}

/// Add customers to a group and remove members (business side only). Each
/// change is a system record in its history; a removed customer's sockets
/// leave it at once and it is no longer theirs to read.
#[utoipa::path(patch, path = "/api/groups/{id}/members", tag = "groups",
    params(("id" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), request_body = MembersBody, security(("bearer" = [])),
    responses((status = 200, body = ConversationResponse), WriteErrors, UploadErrors))]
pub(crate) async fn members(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    Json(body): Json<MembersBody>,
) -> ApiResult<Json<ConversationResponse>> {
    let id = conversation_id(&id)?;
    let (add, remove) = (customers(&body.add, "add")?, customers(&body.remove, "remove")?);
    let conversation = s.messaging.change_group(&actor, id, &add, &remove).await?;
    Ok(Json(ConversationResponse::new(conversation)))
}
