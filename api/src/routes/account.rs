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
    /// `business_owner`, `admin` (the token's claim; what a user may do
    /// comes from `team`) or `customer`.
    role: &'static str,
    /// For a user: the business they act for, and their part in its team
    /// (`owner`, `admin` or `agent`). Absent for a customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<MeTeam>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeTeam {
    business_id: String,
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
    let team = actor.seat.map(|s| MeTeam {
        business_id: s.business.to_hex(),
        role: s.role.map_or("owner", omnibiz_domain::TeamRole::as_str),
    });
    Ok(Json(MeResponse { success: true, id: actor.principal.id_hex(), name: actor.name, role, team }))
}
