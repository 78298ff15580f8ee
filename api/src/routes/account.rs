//! `/api/messages/me`: who the bearer token belongs to.

use axum::Router;
use axum::routing::get;
use omnibiz_service::auth::Principal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::{Authed, Json};
use crate::openapi::Unauthorized;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/messages/me", get(me))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeResponse {
    success: bool,
    /// The user's or customer's id.
    id: String,
    name: String,
    /// `business_owner`, `admin` (treated as a business owner) or `customer`.
    role: &'static str,
}

/// The account the token belongs to: a client checks a token with it and learns which side it is on.
#[utoipa::path(get, path = "/api/messages/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), Unauthorized))]
pub(crate) async fn me(Authed(actor): Authed) -> ApiResult<Json<MeResponse>> {
    let role = match actor.principal {
        Principal::User { role, .. } => role.as_str(),
        Principal::Customer { .. } => "customer",
    };
    Ok(Json(MeResponse { success: true, id: actor.principal.id_hex(), name: actor.name, role }))
}
