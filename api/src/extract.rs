//! Extractors that turn every malformed input into the API's error shape.

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bytes::Bytes;
use omnibiz_service::auth::AuthError;
use omnibiz_service::limits::Action;
use omnibiz_service::messaging::Actor;
use serde::de::DeserializeOwned;

use crate::ApiState;
use crate::error::ApiError;

/// `axum::Json`, with rejections in our error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    /// `axum::Json`'s checks (content type, size, syntax), then: the body
    /// must be an object — serde would read a struct from an array too. The
    /// first pass only validates (`RawValue`, no tree is built).
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(raw) = axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state).await?;
        if !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        serde_json::from_str(raw.get())
            .map(Self)
            .map_err(|e| ApiError::invalid(format!("Failed to deserialize the JSON body into the target type: {e}")))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, with rejections in our error shape.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A JSON body that may also be empty (e.g. a customer's create-or-get).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await.map_err(|e| ApiError::BadInput {
            status: e.status(),
            message: e.body_text(),
            code: if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "VALIDATION_ERROR"
            },
        })?;
        // JSON's whitespace only (not form feed, which `is_ascii_whitespace` counts).
        if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(Self(None));
        }
        // `null` is no body, as an empty one is; anything else must be an object.
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
        match value {
            serde_json::Value::Null => Ok(Self(None)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(|t| Self(Some(t)))
                .map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}"))),
            _ => Err(ApiError::invalid("the body must be a JSON object")),
        }
    }
}

/// The authenticated caller: a verified bearer token and its stored account.
#[derive(Debug, Clone)]
pub struct Authed(pub Actor);

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts.headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid);
    }
    Ok(token.trim())
}

impl FromRequestParts<ApiState> for Authed {
    type Rejection = ApiError;

    /// Verifies the token, loads the account, then takes one unit from the
    /// caller's bucket for this route (429 `RATE_LIMITED` with `Retry-After`
    /// when it is empty).
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let session = state.verifier.verify_session(bearer(parts)?)?;
        let actor = state.messaging.session_actor(&session).await?;
        let route = parts.extensions.get::<MatchedPath>().map_or("", MatchedPath::as_str);
        state.messaging.check_rate(actor.principal.party(), action_of(&parts.method, route))?;
        Ok(Self(actor))
    }
}

/// The kind of work behind a route, which picks the rate-limit bucket.
pub fn action_of(method: &Method, route: &str) -> Action {
    match route {
        "/api/messages/send" | "/api/quick-replies/{id}/send" => Action::Send,
        "/api/messages/{message_id}/read" | "/api/messages/conversations/{id}/read" => Action::Receipt,
        "/api/messages/search" => Action::Search,
        "/api/messages/conversations/{conversation_id}/attachments" => Action::Upload,
        _ if method == Method::GET || method == Method::HEAD => Action::Read,
        _ => Action::Write,
    }
}
