//! Why an upload or download failed.

/// The service maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Type(String),
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a valid image: {0}")]
    BadImage(String),
    /// An audio file that does not decode, or breaks a limit.
    #[error("the file is not accepted as audio: {0}")]
    BadAudio(#[from] super::audio::AudioError),
    /// The client's upload broke off or was malformed.
    #[error("the upload could not be read: {0}")]
    Client(String),
    #[error("the file is gone")]
    Missing,
    #[error("file storage failed: {0:#}")]
    Storage(anyhow::Error),
}

impl From<object_store::Error> for FileError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::Missing,
            e => Self::Storage(e.into()),
        }
    }
}
