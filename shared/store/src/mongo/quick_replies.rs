//! [`QuickReplyStore`] on MongoDB.

use anyhow::Context as _;
use async_trait::async_trait;
use mongodb::bson::doc;
use omnibiz_domain::{QuickReply, QuickReplyId, UserId};

use super::MongoStore;
use super::codec::*;
use super::errors::*;
use crate::prelude::*;
use crate::{StoreError, StoreResult};

#[async_trait]
impl QuickReplyStore for MongoStore {
    async fn insert_quick_reply(&self, r: &QuickReply) -> StoreResult<bool> {
        let d = doc! {
            "_id": r.id.oid(), "owner": r.owner.oid(), "shortcut": r.shortcut.as_str(), "content": &r.content,
            "createdAt": date(r.created_at), "updatedAt": date(r.updated_at),
        };
        match self.replies.insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(classify("saving a quick reply", e)),
        }
    }

    async fn list_quick_replies(&self, owner: UserId) -> StoreResult<Vec<QuickReply>> {
        let what = "listing quick replies";
        let cursor = self
            .replies
            .find(doc! {"owner": owner.oid()})
            .sort(doc! {"shortcut": 1})
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| reply_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn get_quick_reply(&self, id: QuickReplyId) -> StoreResult<Option<QuickReply>> {
        let what = "reading a quick reply";
        let d = self.replies.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(reply_from(&d).context(what)?),
            None => None,
        })
    }

    async fn find_quick_reply(&self, owner: UserId, shortcut: &str) -> StoreResult<Option<QuickReply>> {
        let what = "reading a quick reply";
        let d = self
            .replies
            .find_one(doc! {"owner": owner.oid(), "shortcut": shortcut})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(reply_from(&d).context(what)?),
            None => None,
        })
    }

    async fn save_quick_reply(&self, r: &QuickReply) -> StoreResult<Option<bool>> {
        let update = doc! {"$set": {
            "shortcut": r.shortcut.as_str(), "content": &r.content, "updatedAt": date(r.updated_at),
        }};
        match self.replies.update_one(doc! {"_id": r.id.oid()}, update).await {
            Ok(u) if u.matched_count == 0 => Ok(None),
            Ok(_) => Ok(Some(true)),
            Err(e) if is_duplicate_key(&e) => Ok(Some(false)),
            Err(e) => Err(classify("saving a quick reply", e)),
        }
    }

    async fn delete_quick_reply(&self, id: QuickReplyId) -> StoreResult<bool> {
        let r =
            self.replies.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify("deleting a quick reply", e))?;
        Ok(r.deleted_count == 1)
    }
}
