//! Uploads: streaming a file into storage for a conversation, and reading it back.

use std::sync::Arc;

use chrono::Utc;
use omnibiz_domain::Upload;
use omnibiz_domain::{Attachment, ConversationId, UploadId};
use tracing::instrument;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::files::Files;

pub(super) fn files_disabled() -> ServiceError {
    ServiceError::Disabled(
        "file uploads are not configured on this server (set OMNIBIZ_S3_BUCKET, or OMNIBIZ_FILES_DIR)".into(),
    )
}

impl Messaging {
    /// Streams a file into storage for a conversation the caller is in, and
    /// returns the attachment to put into a send (`{id}` is enough).
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %conversation))]
    pub async fn upload<S, E>(
        &self,
        actor: &Actor,
        conversation: ConversationId,
        file_name: &str,
        body: S,
    ) -> ServiceResult<Attachment>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let files = self.files.as_ref().ok_or_else(files_disabled)?;
        // Held until this function returns or its caller drops it (a client gone mid-upload).
        let _slot = self.limits.upload_slot(actor.principal.party())?;
        let (conv, side) = self.sendable(actor, conversation).await?;
        let upload = self
            .store_file(files, conv.id, &actor.principal.id_hex(), side, &Files::clean_name(file_name), body)
            .await?;
        Ok(files.attachment(&upload))
    }

    /// Stores a file for a conversation: its record first (an object never
    /// exists without a record to clean it up by), then the bytes (type
    /// sniffed, thumbnail made), then the record finished — or removed when
    /// the bytes are refused. Uploads and link-preview images both go this way.
    pub(super) async fn store_file<S, E>(
        &self,
        files: &Files,
        conversation: ConversationId,
        uploader_id: &str,
        side: omnibiz_domain::Side,
        name: &str,
        body: S,
    ) -> ServiceResult<Upload>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let mut upload = Upload {
            id: UploadId::new(),
            conversation_id: conversation,
            uploader_id: uploader_id.to_owned(),
            uploader_side: side,
            name: name.to_owned(),
            mime_type: "application/octet-stream".into(),
            size: None,
            has_thumbnail: false,
            audio: None,
            created_at: Utc::now(),
            claim: None,
            message_id: None,
            confirmed: false,
        };
        self.store.insert_upload(&upload).await?;
        let stored = match files.store(upload.id, body).await {
            Ok(s) => s,
            Err(e) => {
                if let Err(e) = self.store.delete_upload(upload.id).await {
                    tracing::warn!(error.cause_chain = ?e, "removing a failed upload's record; the sweeper will");
                }
                metrics::counter!("uploads_refused_total").increment(1);
                return Err(e.into());
            }
        };
        self.store
            .finish_upload(upload.id, &stored.mime_type, stored.size, stored.has_thumbnail, stored.audio.as_ref())
            .await?;
        metrics::counter!("uploads_stored_total").increment(1);
        upload.mime_type = stored.mime_type;
        upload.size = Some(stored.size);
        upload.has_thumbnail = stored.has_thumbnail;
        upload.audio = stored.audio;
        Ok(upload)
    }

    /// An upload the caller may download (a participant of its conversation), with its storage.
    pub async fn visible_upload(&self, actor: &Actor, id: UploadId) -> ServiceResult<(Upload, Arc<Files>)> {
        let files = self.files.clone().ok_or_else(files_disabled)?;
        let not_found = || ServiceError::NotFound("file not found".into());
        let upload = self.store.get_upload(id).await?.filter(|u| u.size.is_some()).ok_or_else(not_found)?;
        let (conv, side) = self.visible_conversation(actor, upload.conversation_id).await.map_err(|_| not_found())?;
        // The other side sees a file once it went out in a message, not while
        // its uploader has only uploaded it (it may never be sent).
        let mine = upload.uploader_id == actor.principal.id_hex();
        if !(mine || (upload.message_id.is_some() && upload.confirmed)) {
            return Err(not_found());
        }
        // A file of an internal note is the business side's only.
        if side == omnibiz_domain::Side::Customer
            && let Some(m) = upload.message_id
            && self.store.get_message(m).await?.is_none_or(|m| m.private)
        {
            return Err(not_found());
        }
        super::conversations::refuse_if_blocked(&conv, side)?;
        Ok((upload, files))
    }

    /// An upload by id for a signed link (the signature already checked).
    pub async fn upload_by_link(&self, id: UploadId) -> ServiceResult<(Upload, Arc<Files>)> {
        let files = self.files.clone().ok_or_else(files_disabled)?;
        let upload = self.store.get_upload(id).await?.filter(|u| u.size.is_some());
        Ok((upload.ok_or_else(|| ServiceError::NotFound("file not found".into()))?, files))
    }
}
