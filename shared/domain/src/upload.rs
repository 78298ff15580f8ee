//! The record of an uploaded file (the bytes live in object storage; see
//! `omnibiz_service::files`).

use chrono::{DateTime, Utc};

use crate::ids::{ConversationId, MessageId, UploadId};
use crate::message::AudioInfo;
use crate::party::Side;

/// A stored upload's record.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: UploadId,
    pub conversation_id: ConversationId,
    /// Hex id of the uploader (a user or a customer).
    pub uploader_id: String,
    pub uploader_side: Side,
    /// Cleaned file name (no path, no control characters).
    pub name: String,
    /// The sniffed media type.
    pub mime_type: String,
    /// Bytes; `None` while the upload is still being written.
    pub size: Option<u64>,
    pub has_thumbnail: bool,
    /// Duration and waveform of an audio file.
    pub audio: Option<AudioInfo>,
    pub created_at: DateTime<Utc>,
    /// Who claimed it: the claiming send's `clientMessageId`, or a one-off key.
    pub claim: Option<String>,
    /// The message it belongs to, once that message is stored.
    pub message_id: Option<MessageId>,
    /// The message is stored and refers to it; the sweeper leaves it alone.
    pub confirmed: bool,
}
