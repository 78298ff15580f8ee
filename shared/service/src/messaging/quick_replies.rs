//! Quick replies: an owner's saved answers, sent by `/shortcut`.

use chrono::Utc;
use omnibiz_domain::views::{self};
use omnibiz_domain::{MessageBody, UserId};

use super::{Actor, Messaging, ServiceError, ServiceResult};

pub(super) fn shortcut_taken(s: &omnibiz_domain::Shortcut) -> ServiceError {
    ServiceError::Conflict(format!("you already have a quick reply /{}", s.as_str()))
}

/// A quick reply as its owner sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickReplyView {
    pub id: String,
    /// Typed as `/shortcut`; 1–32 of `a-z`, `0-9`, `-`, `_`.
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,32}$")]
    pub shortcut: omnibiz_domain::Shortcut,
    pub content: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&omnibiz_domain::QuickReply> for QuickReplyView {
    fn from(r: &omnibiz_domain::QuickReply) -> Self {
        Self {
            id: r.id.to_hex(),
            shortcut: r.shortcut.clone(),
            content: r.content.clone(),
            created_at: views::iso(r.created_at),
            updated_at: views::iso(r.updated_at),
        }
    }
}

/// Most quick replies one business owner keeps.
pub const MAX_QUICK_REPLIES: usize = 200;

impl Messaging {
    pub(super) fn replies_owner(actor: &Actor) -> ServiceResult<UserId> {
        // The business's: its whole team shares them.
        actor.business().ok_or_else(|| ServiceError::Forbidden("only business owners have quick replies".into()))
    }

    /// The owner's quick replies, by shortcut.
    pub async fn list_quick_replies(&self, actor: &Actor) -> ServiceResult<Vec<QuickReplyView>> {
        let owner = Self::replies_owner(actor)?;
        Ok(self.store.list_quick_replies(owner).await?.iter().map(QuickReplyView::from).collect())
    }

    /// Saves a new quick reply; 409 when the shortcut is taken.
    pub async fn create_quick_reply(
        &self,
        actor: &Actor,
        shortcut: &str,
        content: &str,
    ) -> ServiceResult<QuickReplyView> {
        let owner = Self::replies_owner(actor)?;
        let shortcut = omnibiz_domain::Shortcut::parse(shortcut).map_err(ServiceError::Invalid)?;
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if self.store.list_quick_replies(owner).await?.len() >= MAX_QUICK_REPLIES {
            return Err(ServiceError::Invalid(format!("at most {MAX_QUICK_REPLIES} quick replies; delete one first")));
        }
        let now = Utc::now();
        let reply = omnibiz_domain::QuickReply {
            id: omnibiz_domain::QuickReplyId::new(),
            owner,
            shortcut,
            content: body.into_string(),
            created_at: now,
            updated_at: now,
        };
        if !self.store.insert_quick_reply(&reply).await? {
            return Err(shortcut_taken(&reply.shortcut));
        }
        Ok(QuickReplyView::from(&reply))
    }

    pub(super) async fn own_quick_reply(
        &self,
        actor: &Actor,
        id: omnibiz_domain::QuickReplyId,
    ) -> ServiceResult<omnibiz_domain::QuickReply> {
        let owner = Self::replies_owner(actor)?;
        let found = self.store.get_quick_reply(id).await?.filter(|r| r.owner == owner);
        found.ok_or_else(|| ServiceError::NotFound("quick reply not found".into()))
    }

    /// Changes a quick reply's shortcut and/or content.
    pub async fn update_quick_reply(
        &self,
        actor: &Actor,
        id: omnibiz_domain::QuickReplyId,
        shortcut: Option<&str>,
        content: Option<&str>,
    ) -> ServiceResult<QuickReplyView> {
        let mut reply = self.own_quick_reply(actor, id).await?;
        if let Some(s) = shortcut {
            reply.shortcut = omnibiz_domain::Shortcut::parse(s).map_err(ServiceError::Invalid)?;
        }
        if let Some(c) = content {
            reply.content = MessageBody::parse(c).map_err(|e| ServiceError::Invalid(e.to_string()))?.into_string();
        }
        reply.updated_at = Utc::now();
        match self.store.save_quick_reply(&reply).await? {
            Some(true) => Ok(QuickReplyView::from(&reply)),
            Some(false) => Err(shortcut_taken(&reply.shortcut)),
            None => Err(ServiceError::NotFound("quick reply not found".into())),
        }
    }

    pub async fn delete_quick_reply(&self, actor: &Actor, id: omnibiz_domain::QuickReplyId) -> ServiceResult<()> {
        self.own_quick_reply(actor, id).await?;
        self.store.delete_quick_reply(id).await?;
        Ok(())
    }

    /// The content of the owner's quick reply named by id or shortcut (for a send).
    pub async fn quick_reply_content(&self, actor: &Actor, key: &str) -> ServiceResult<String> {
        let owner = Self::replies_owner(actor)?;
        let found = match key.parse::<omnibiz_domain::QuickReplyId>() {
            Ok(id) => self.store.get_quick_reply(id).await?.filter(|r| r.owner == owner),
            Err(_) => match omnibiz_domain::Shortcut::parse(key) {
                Ok(s) => self.store.find_quick_reply(owner, s.as_str()).await?,
                Err(_) => None,
            },
        };
        Ok(found.ok_or_else(|| ServiceError::NotFound(format!("no quick reply {key:?}")))?.content)
    }
}
