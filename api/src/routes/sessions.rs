//! `/api/sessions/revoke`: end a principal's sessions everywhere (sign out
//! of every device, or a business cutting a customer off).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use omnibiz_domain::views::iso;
use omnibiz_domain::{CustomerId, Party, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json};
use crate::openapi::ReadErrors;

pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/sessions/revoke", post(revoke))
}

/// Whose sessions to end: yourself (an empty body), or one of your customers.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// A customer you invited (business owners), or yourself.
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    customer_id: Option<String>,
    /// Yourself (a user).
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokeResponse {
    success: bool,
    /// Tokens issued up to this time are refused from now on (ISO 8601).
    revoked_at: String,
}

/// Ends every session of a principal on every gateway within seconds: its
/// sockets get `session_ended` (`reason: "revoked"`) and are disconnected,
/// and tokens issued until now stop working (API pods see it within the
/// account cache time). Yourself, or a customer you invited; anyone else is 404.
#[utoipa::path(post, path = "/api/sessions/revoke", tag = "account", security(("bearer" = [])),
    request_body(content = Option<RevokeBody>, description = "Empty to end your own sessions"),
    responses((status = 200, body = RevokeResponse), ReadErrors))]
pub(crate) async fn revoke(
    State(state): State<ApiState>,
    Authed(actor): Authed,
    body: Bytes,
) -> ApiResult<Json<RevokeResponse>> {
    let body: RevokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody::default()
    } else {
        serde_json::from_slice::<Option<RevokeBody>>(&body)
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?
            .unwrap_or_default()
    };
    let target = match (body.user_id.as_deref(), body.customer_id.as_deref()) {
        (None, None) => actor.principal.party(),
        (Some(u), None) => Party::Owner(u.parse::<UserId>().map_err(|e| ApiError::invalid(format!("userId: {e}")))?),
        (None, Some(c)) => {
            Party::Customer(c.parse::<CustomerId>().map_err(|e| ApiError::invalid(format!("customerId: {e}")))?)
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid("give userId or customerId, not both")),
    };
    let at = state.messaging.revoke_sessions(&actor, target).await?;
    Ok(Json(RevokeResponse { success: true, revoked_at: iso(at) }))
}
