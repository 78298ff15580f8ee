//! Quick replies (the seed's "chat templates"): a unique shortcut per owner.

use async_trait::async_trait;
use omnibiz_domain::{QuickReply, QuickReplyId, UserId};

use crate::StoreResult;

#[async_trait]
pub trait QuickReplyStore: Send + Sync + 'static {
    /// False when the owner already has this shortcut.
    async fn insert_quick_reply(&self, r: &QuickReply) -> StoreResult<bool>;
    /// The owner's replies by shortcut.
    async fn list_quick_replies(&self, owner: UserId) -> StoreResult<Vec<QuickReply>>;
    async fn get_quick_reply(&self, id: QuickReplyId) -> StoreResult<Option<QuickReply>>;
    async fn find_quick_reply(&self, owner: UserId, shortcut: &str) -> StoreResult<Option<QuickReply>>;
    /// Saves shortcut, content and `updated_at`: `Some(false)` when the
    /// shortcut is taken by another of the owner's replies, `None` when gone.
    async fn save_quick_reply(&self, r: &QuickReply) -> StoreResult<Option<bool>>;
    async fn delete_quick_reply(&self, id: QuickReplyId) -> StoreResult<bool>;
}
