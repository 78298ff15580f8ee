//! Why a call failed, as one type every handler maps to HTTP and socket errors.

use omnibiz_store::StoreError;

use crate::files::FileError;

/// Why a call failed. Each variant maps to one HTTP status and one socket code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 401: the token is fine but names no account we know.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: does not exist, or is not visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// 400: the input is malformed.
    #[error("{0}")]
    Invalid(String),
    /// 413: an upload over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a file of a type not accepted.
    #[error("{0}")]
    UnsupportedType(String),
    /// 501: a feature this server is not configured for (file storage).
    #[error("{0}")]
    Disabled(String),
    /// 409: the change clashes with existing data (a quick reply's shortcut).
    #[error("{0}")]
    Conflict(String),
    /// 429: the caller's rate limit for this kind of work is used up.
    #[error(transparent)]
    RateLimited(#[from] crate::limits::RateLimited),
    /// 503: the stored path is saturated; nothing was stored (retry later, same `clientMessageId`).
    #[error(transparent)]
    Overloaded(#[from] crate::overload::Overloaded),
    /// 503: the query ran past its time limit (narrow it down and retry).
    #[error("{0}")]
    TimedOut(String),
    /// 503: storage (the database, or file storage) cannot be reached now.
    #[error("store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// 500: a bug or a data problem; the cause is logged, not shown.
    #[error("{0}")]
    Internal(anyhow::Error),
}

impl ServiceError {
    /// A stable machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Invalid(_) => "VALIDATION_ERROR",
            Self::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Disabled(_) => "NOT_CONFIGURED",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited(_) => "RATE_LIMITED",
            Self::Overloaded(_) => "OVERLOADED",
            Self::TimedOut(_) => "QUERY_TIMEOUT",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<FileError> for ServiceError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            FileError::Type(m) => Self::UnsupportedType(m),
            FileError::BadAudio(crate::files::audio::AudioError::Unsupported(_)) => {
                Self::UnsupportedType(e.to_string())
            }
            FileError::Empty | FileError::BadImage(_) | FileError::BadAudio(_) | FileError::Client(_) => {
                Self::Invalid(e.to_string())
            }
            FileError::Missing => Self::NotFound("file not found".into()),
            FileError::Storage(cause) => Self::Unavailable(cause.context("file storage")),
        }
    }
}

/// Storage errors keep their meaning (unreachable or not) and their cause,
/// without handlers knowing the store's types.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::Other(cause) => Self::Internal(cause),
            StoreError::TimedOut(what) => Self::TimedOut(what),
        }
    }
}
