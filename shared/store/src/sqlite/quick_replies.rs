//! [`QuickReplyStore`] on SQLite.

use async_trait::async_trait;
use omnibiz_domain::{QuickReply, QuickReplyId, UserId};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::*;
use crate::StoreResult;
use crate::prelude::*;

#[async_trait]
impl QuickReplyStore for SqliteStore {
    async fn insert_quick_reply(&self, r: &QuickReply) -> StoreResult<bool> {
        let r = r.clone();
        self.with("saving a quick reply", move |c| {
            match c.execute(
                &format!("INSERT INTO quick_replies ({REPLY_COLS}) VALUES (?1,?2,?3,?4,?5,?6)"),
                params![
                    r.id.to_hex(),
                    r.owner.to_hex(),
                    r.shortcut.as_str(),
                    r.content,
                    ms(r.created_at),
                    ms(r.updated_at)
                ],
            ) {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn list_quick_replies(&self, owner: UserId) -> StoreResult<Vec<QuickReply>> {
        self.with("listing quick replies", move |c| {
            let mut stmt =
                c.prepare(&format!("SELECT {REPLY_COLS} FROM quick_replies WHERE owner = ?1 ORDER BY shortcut"))?;
            let rows = stmt.query_map([owner.to_hex()], reply_row)?;
            rows.collect()
        })
        .await
    }

    async fn get_quick_reply(&self, id: QuickReplyId) -> StoreResult<Option<QuickReply>> {
        self.with("reading a quick reply", move |c| {
            c.query_row(&format!("SELECT {REPLY_COLS} FROM quick_replies WHERE id = ?1"), [id.to_hex()], reply_row)
                .optional()
        })
        .await
    }

    async fn find_quick_reply(&self, owner: UserId, shortcut: &str) -> StoreResult<Option<QuickReply>> {
        let shortcut = shortcut.to_owned();
        self.with("reading a quick reply", move |c| {
            c.query_row(
                &format!("SELECT {REPLY_COLS} FROM quick_replies WHERE owner = ?1 AND shortcut = ?2"),
                params![owner.to_hex(), shortcut],
                reply_row,
            )
            .optional()
        })
        .await
    }

    async fn save_quick_reply(&self, r: &QuickReply) -> StoreResult<Option<bool>> {
        let r = r.clone();
        self.with("saving a quick reply", move |c| {
            match c.execute(
                "UPDATE quick_replies SET shortcut = ?2, content = ?3, updated_at = ?4 WHERE id = ?1",
                params![r.id.to_hex(), r.shortcut.as_str(), r.content, ms(r.updated_at)],
            ) {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(true)),
                Err(e) if is_unique_violation(&e) => Ok(Some(false)),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn delete_quick_reply(&self, id: QuickReplyId) -> StoreResult<bool> {
        self.with("deleting a quick reply", move |c| {
            Ok(c.execute("DELETE FROM quick_replies WHERE id = ?1", [id.to_hex()])? == 1)
        })
        .await
    }
}
