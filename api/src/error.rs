//! The API's error type: every failure becomes `{success:false, message, code}`
//! with the right status. Internal errors are logged with their cause chain
//! and answered with an opaque message.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use omnibiz_service::auth::AuthError;
use omnibiz_service::messaging::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub message: String,
    /// Stable machine-readable code, e.g. `VALIDATION_ERROR`, `NOT_FOUND`.
    pub code: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing, malformed, expired or forged token.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Status by variant (see [`ServiceError`]).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// 400 / 413 / 415 for a body or query string that does not parse.
    #[error("{message}")]
    BadInput { status: StatusCode, message: String, code: &'static str },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Service(ServiceError::Invalid(message.into()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let (code, message) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body is too large".to_owned()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("UNSUPPORTED_MEDIA_TYPE", "expected a JSON body with Content-Type: application/json".to_owned())
            }
            _ => ("VALIDATION_ERROR", r.body_text()),
        };
        // axum answers well-formed JSON of the wrong shape with 422; our contract is 400 for every bad body.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
        Self::BadInput { status, message, code }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::BadInput { status: StatusCode::BAD_REQUEST, message: r.body_text(), code: "VALIDATION_ERROR" }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            Self::Auth(e) => {
                let code = match e {
                    AuthError::Expired => "TOKEN_EXPIRED",
                    AuthError::Missing => "UNAUTHORIZED",
                    _ => "INVALID_TOKEN",
                };
                (StatusCode::UNAUTHORIZED, code, e.to_string())
            }
            Self::Service(e) => {
                let status = match e {
                    ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
                    ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                    ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
                    ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    ServiceError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ServiceError::Disabled(_) => StatusCode::NOT_IMPLEMENTED,
                    ServiceError::Conflict(_) => StatusCode::CONFLICT,
                    ServiceError::Unavailable(_) | ServiceError::TimedOut(_) | ServiceError::Overloaded(_) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    ServiceError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                    ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let message = match e {
                    ServiceError::Unavailable(inner) => {
                        tracing::error!(error.cause_chain = ?inner, "store failure");
                        "storage is temporarily unavailable; retry shortly".to_owned()
                    }
                    ServiceError::Internal(inner) => {
                        tracing::error!(error.cause_chain = ?inner, "store failure");
                        "internal error".to_owned()
                    }
                    other => other.to_string(),
                };
                (status, e.code(), message)
            }
            Self::BadInput { status, message, code } => (*status, *code, message.clone()),
        };
        let mut res = (status, Json(ErrorBody { success: false, message, code })).into_response();
        match &self {
            Self::Service(ServiceError::RateLimited(limited)) => {
                res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(limited.retry_after_secs()));
            }
            Self::Service(ServiceError::Overloaded(o)) => {
                res.headers_mut().insert(RETRY_AFTER, HeaderValue::from(o.retry_after_secs()));
            }
            _ => {}
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
