//! `/api/messages/customers`: the business owner's customers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use omnibiz_domain::views::CustomerView;
use omnibiz_service::messaging::CustomerPage;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::CustomerListParams;
use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::{Authed, Json, Query};
use crate::openapi::{BadRequest, Forbidden, Unauthorized};

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/messages/customers", get(list))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomersResponse {
    success: bool,
    customers: Vec<CustomerView>,
    next_cursor: Option<String>,
}

/// Customers invited by the caller, newest first, with order stats and chat state. Business owners only.
#[utoipa::path(get, path = "/api/messages/customers", tag = "customers", params(CustomerListParams), security(("bearer" = [])),
    responses((status = 200, body = CustomersResponse), BadRequest, Unauthorized, Forbidden))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Query(p): Query<CustomerListParams>,
) -> ApiResult<Json<CustomersResponse>> {
    let page = CustomerPage { limit: p.limit.map(|l| usize::try_from(l).unwrap_or(0)), cursor: p.cursor, q: p.q };
    let (customers, next_cursor) = s.messaging.list_customers(&actor, page).await?;
    Ok(Json(CustomersResponse { success: true, customers, next_cursor }))
}
