//! Upload records: written before the object, claimed by one send, confirmed once its message is stored (see `omnibiz_service::files`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::{AudioInfo, ConversationId, MessageId, Upload, UploadId};

use crate::StoreResult;

#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    async fn insert_upload(&self, upload: &Upload) -> StoreResult<()>;
    /// The object is written: its sniffed type, size, thumbnail, and what its audio measured. False when the record is gone.
    async fn finish_upload(
        &self,
        id: UploadId,
        mime_type: &str,
        size: u64,
        has_thumbnail: bool,
        audio: Option<&AudioInfo>,
    ) -> StoreResult<bool>;
    async fn get_upload(&self, id: UploadId) -> StoreResult<Option<Upload>>;
    /// Claims a finished upload for a send: only the uploader's, only in its
    /// conversation, and only if unclaimed and unconfirmed, or claimed with
    /// the same `key` (a retried send). `None` when it cannot be claimed.
    async fn claim_upload(
        &self,
        id: UploadId,
        conversation: ConversationId,
        uploader: &str,
        key: &str,
    ) -> StoreResult<Option<Upload>>;
    /// The message is stored: these uploads are its, and stay.
    async fn confirm_uploads(&self, ids: &[UploadId], message: MessageId) -> StoreResult<()>;
    /// Hands uploads back to the sweeper (before their message is deleted).
    async fn unconfirm_uploads(&self, ids: &[UploadId]) -> StoreResult<()>;
    /// Unconfirmed uploads created before `before`, oldest first.
    async fn stale_uploads(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Upload>>;
    /// A message of the conversation whose attachments include this upload.
    async fn message_with_upload(&self, conversation: ConversationId, id: UploadId) -> StoreResult<Option<MessageId>>;
    async fn delete_upload(&self, id: UploadId) -> StoreResult<()>;
}
