//! [`UploadStore`] on MongoDB.

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use omnibiz_domain::{AudioInfo, ConversationId, MessageId, Upload, UploadId};

use super::MongoStore;
use super::codec::*;
use super::errors::*;
use crate::prelude::*;
use crate::{StoreError, StoreResult};

#[async_trait]
impl UploadStore for MongoStore {
    async fn insert_upload(&self, u: &Upload) -> StoreResult<()> {
        self.uploads.insert_one(upload_doc(u)).await.map_err(|e| classify("recording an upload", e))?;
        Ok(())
    }

    async fn finish_upload(
        &self,
        id: UploadId,
        mime_type: &str,
        size: u64,
        has_thumbnail: bool,
        audio: Option<&AudioInfo>,
    ) -> StoreResult<bool> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let r = self
            .uploads
            .update_one(
                doc! {"_id": id.oid()},
                doc! {"$set": {"type": mime_type, "size": size, "hasThumbnail": has_thumbnail, "audio": audio_bson(audio)}},
            )
            .await
            .map_err(|e| classify("recording an upload", e))?;
        Ok(r.matched_count == 1)
    }

    async fn get_upload(&self, id: UploadId) -> StoreResult<Option<Upload>> {
        let what = "reading an upload";
        let d = self.uploads.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(upload_from(&d).context(what)?),
            None => None,
        })
    }

    async fn claim_upload(
        &self,
        id: UploadId,
        conversation: ConversationId,
        uploader: &str,
        key: &str,
    ) -> StoreResult<Option<Upload>> {
        let what = "claiming an upload";
        let d = self
            .uploads
            .find_one_and_update(
                doc! {
                    "_id": id.oid(), "conversationId": conversation.oid(), "uploaderId": uploader,
                    "size": {"$type": "number"},
                    "$or": [{"claim": null, "confirmed": false}, {"claim": key}],
                },
                doc! {"$set": {"claim": key}},
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(upload_from(&d).context(what)?),
            None => None,
        })
    }

    async fn confirm_uploads(&self, ids: &[UploadId], message: MessageId) -> StoreResult<()> {
        let ids: Vec<ObjectId> = ids.iter().map(UploadId::oid).collect();
        self.uploads
            .update_many(doc! {"_id": {"$in": ids}}, doc! {"$set": {"messageId": message.oid(), "confirmed": true}})
            .await
            .map_err(|e| classify("confirming uploads", e))?;
        Ok(())
    }

    async fn unconfirm_uploads(&self, ids: &[UploadId]) -> StoreResult<()> {
        let ids: Vec<ObjectId> = ids.iter().map(UploadId::oid).collect();
        self.uploads
            .update_many(doc! {"_id": {"$in": ids}}, doc! {"$set": {"confirmed": false}})
            .await
            .map_err(|e| classify("releasing uploads", e))?;
        Ok(())
    }

    async fn stale_uploads(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Upload>> {
        let what = "listing stale uploads";
        let cursor = self
            .uploads
            .find(doc! {"confirmed": false, "createdAt": {"$lt": date(before)}})
            .sort(doc! {"confirmed": 1, "createdAt": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| upload_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn message_with_upload(&self, conversation: ConversationId, id: UploadId) -> StoreResult<Option<MessageId>> {
        let what = "looking for an upload's message";
        let d = self
            .messages
            .find_one(doc! {"conversationId": conversation.oid(), "attachments.id": id.to_hex()})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(d.and_then(|d| d.get_object_id("_id").ok()).map(Into::into))
    }

    async fn delete_upload(&self, id: UploadId) -> StoreResult<()> {
        self.uploads.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify("deleting an upload", e))?;
        Ok(())
    }
}
