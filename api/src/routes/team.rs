//! `/api/team…`: a business's team — members with roles, and its rules.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use omnibiz_domain::{TeamRole, TeamSettings, UserId};
use omnibiz_service::messaging::TeamView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::{Conflict, Forbidden, ReadErrors, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/team", get(show))
        .route("/api/team/members", post(add))
        .route("/api/team/members/{userId}", delete(remove))
        .route("/api/team/settings", put(settings))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TeamResponse {
    success: bool,
    team: TeamView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AddMemberBody {
    /// The user (an account of the main app) to add, or whose role to
    /// change. Exactly one of `userId` and `email`.
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    user_id: Option<String>,
    /// The email of that account instead (case does not matter).
    #[schema(max_length = 254)]
    email: Option<String>,
    role: TeamRole,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removed {
    success: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SettingsResponse {
    success: bool,
    settings: TeamSettings,
}

fn user_id(raw: &str) -> ApiResult<UserId> {
    raw.parse().map_err(|e| ApiError::invalid(format!("userId: {e}")))
}

/// Your business's team: the owner, then the members (agents and admins),
/// with who is online, and its rules. Anyone of the team may read it.
#[utoipa::path(get, path = "/api/team", tag = "team", security(("bearer" = [])),
    responses((status = 200, body = TeamResponse), ReadErrors, Forbidden))]
pub(crate) async fn show(State(s): State<ApiState>, Authed(actor): Authed) -> ApiResult<Json<TeamResponse>> {
    Ok(Json(TeamResponse { success: true, team: s.messaging.team(&actor).await? }))
}

/// Add a user to your team as `agent` or `admin` (201), or change the role
/// of a member (200). Owner and admins only. A user is in one team at most
/// (409 when in another); their open sessions take the new role at once.
#[utoipa::path(post, path = "/api/team/members", tag = "team", request_body = AddMemberBody,
    security(("bearer" = [])),
    responses((status = 201, body = TeamResponse), (status = 200, body = TeamResponse), WriteErrors, Conflict, UploadErrors))]
pub(crate) async fn add(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<AddMemberBody>,
) -> ApiResult<(StatusCode, Json<TeamResponse>)> {
    let user = match (&body.user_id, &body.email) {
        (Some(id), None) => user_id(id)?,
        (None, Some(email)) => s.messaging.user_by_email(&actor, email).await?,
        _ => return Err(ApiError::invalid("exactly one of userId and email")),
    };
    let added = s.messaging.add_member(&actor, user, body.role).await?;
    let team = s.messaging.team(&actor).await?;
    Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, Json(TeamResponse { success: true, team })))
}

/// Remove a member: their sessions end on every gateway now (tokens issued
/// until now are refused) and their conversations become unassigned.
/// Owner and admins only.
#[utoipa::path(delete, path = "/api/team/members/{userId}", tag = "team",
    params(("userId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = Removed), WriteErrors))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Removed>> {
    s.messaging.remove_member(&actor, user_id(&id)?).await?;
    Ok(Json(Removed { success: true }))
}

/// Your team's rules: `agentsSeeAll` (agents see every conversation, not
/// only theirs and the unassigned ones), `autoAssign` (a customer's message
/// in an unassigned conversation assigns it to an online agent under
/// `maxOpenPerAgent` open ones). Owner and admins only.
#[utoipa::path(put, path = "/api/team/settings", tag = "team", request_body = TeamSettings,
    security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), WriteErrors, UploadErrors))]
pub(crate) async fn settings(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Json(body): Json<TeamSettings>,
) -> ApiResult<Json<SettingsResponse>> {
    let settings = s.messaging.set_team_settings(&actor, body).await?;
    Ok(Json(SettingsResponse { success: true, settings }))
}
