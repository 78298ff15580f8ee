//! [`UploadStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::{AudioInfo, ConversationId, MessageId, Upload, UploadId};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::*;
use super::schema::*;
use crate::StoreResult;
use crate::prelude::*;

#[async_trait]
impl UploadStore for SqliteStore {
    async fn insert_upload(&self, u: &Upload) -> StoreResult<()> {
        let u = u.clone();
        self.with("recording an upload", move |c| {
            c.execute(
                &format!("INSERT INTO uploads ({UPLOAD_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"),
                params![
                    u.id.to_hex(),
                    u.conversation_id.to_hex(),
                    u.uploader_id,
                    u.uploader_side.role_name(),
                    u.name,
                    u.mime_type,
                    u.size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    u.has_thumbnail,
                    ms(u.created_at),
                    u.claim,
                    u.message_id.map(|m| m.to_hex()),
                    u.confirmed,
                    u.audio
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn finish_upload(
        &self,
        id: UploadId,
        mime_type: &str,
        size: u64,
        has_thumbnail: bool,
        audio: Option<&AudioInfo>,
    ) -> StoreResult<bool> {
        let mime = mime_type.to_owned();
        let audio = audio.map(serde_json::to_string).transpose().map_err(|e| crate::StoreError::Other(e.into()))?;
        self.with("recording an upload", move |c| {
            let n = c.execute(
                "UPDATE uploads SET mime_type = ?2, size = ?3, has_thumbnail = ?4, audio = ?5 WHERE id = ?1",
                params![id.to_hex(), mime, i64::try_from(size).unwrap_or(i64::MAX), has_thumbnail, audio],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_upload(&self, id: UploadId) -> StoreResult<Option<Upload>> {
        self.with("reading an upload", move |c| {
            c.query_row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1"), [id.to_hex()], upload_row)
                .optional()
        })
        .await
    }

    async fn claim_upload(
        &self,
        id: UploadId,
        conversation: ConversationId,
        uploader: &str,
        key: &str,
    ) -> StoreResult<Option<Upload>> {
        let (uploader, key) = (uploader.to_owned(), key.to_owned());
        self.with("claiming an upload", move |c| {
            c.query_row(
                &format!(
                    "UPDATE uploads SET claim = ?4 WHERE id = ?1 AND conversation_id = ?2 AND uploader_id = ?3 \
                     AND size IS NOT NULL AND ((claim IS NULL AND confirmed = 0) OR claim = ?4) RETURNING {UPLOAD_COLS}"
                ),
                params![id.to_hex(), conversation.to_hex(), uploader, key],
                upload_row,
            )
            .optional()
        })
        .await
    }

    async fn confirm_uploads(&self, ids: &[UploadId], message: MessageId) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(UploadId::to_hex).collect();
        self.with("confirming uploads", move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                tx.execute(
                    "UPDATE uploads SET message_id = ?2, confirmed = 1 WHERE id = ?1",
                    params![id, message.to_hex()],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn unconfirm_uploads(&self, ids: &[UploadId]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(UploadId::to_hex).collect();
        self.with("releasing uploads", move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                tx.execute("UPDATE uploads SET confirmed = 0 WHERE id = ?1", [id])?;
            }
            tx.commit()
        })
        .await
    }

    async fn stale_uploads(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Upload>> {
        self.with("listing stale uploads", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {UPLOAD_COLS} FROM uploads WHERE confirmed = 0 AND created_at < ?1 ORDER BY created_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![ms(before), i64::try_from(limit).unwrap_or(i64::MAX)], upload_row)?;
            rows.collect()
        })
        .await
    }

    async fn message_with_upload(&self, conversation: ConversationId, id: UploadId) -> StoreResult<Option<MessageId>> {
        self.with("looking for an upload's message", move |c| {
            let found: Option<String> = c
                .query_row(
                    "SELECT m.id FROM messages m WHERE m.conversation_id = ?1 AND EXISTS \
                     (SELECT 1 FROM json_each(m.attachments) a WHERE json_extract(a.value, '$.id') = ?2)",
                    params![conversation.to_hex(), id.to_hex()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(found.and_then(|s| s.parse().ok()))
        })
        .await
    }

    async fn delete_upload(&self, id: UploadId) -> StoreResult<()> {
        self.with("deleting an upload", move |c| {
            c.execute("DELETE FROM uploads WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }
}
