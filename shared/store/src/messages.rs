//! Messages: append with the next `seq`, page, edit, delete, search, receipts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::search::SearchQuery;
use omnibiz_domain::{ConversationId, LinkPreview, Message, MessageId, Party, Side};

use crate::{Appended, MessageQuery, NewMessage, ReadOutcome, StoreResult};

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Appends a message with the next `seq`, updates `last_message` and the
    /// recipient's unread count. Idempotent per `client_message_id`.
    ///
    /// `None`, with nothing changed, unless the sender is the conversation's
    /// participant on `sender_side` and the conversation is not blocked: the
    /// check is part of the write (on MongoDB, the filter of the update that
    /// takes the `seq`), so a send needs no read of the conversation first.
    async fn append_message(&self, msg: NewMessage) -> StoreResult<Option<Appended>>;
    /// A message by id; deleted ones (the seed's `isDeleted`) are not served.
    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>>;
    /// Deleted messages (the seed's `isDeleted`) are listed as what is left
    /// of them: `deleted`, no content, no attachments.
    async fn list_messages(&self, query: &MessageQuery) -> StoreResult<Vec<Message>>;
    /// Replaces the content of message `id` of `conversation` (the caller
    /// has read it; a message of another conversation is left alone) and sets `edited_at` (and the
    /// conversation's preview when it is the last message); `None` when the
    /// message does not exist or was deleted.
    async fn edit_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        content: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;
    /// Marks a message deleted and removes its content and attachments; an
    /// unread one stops counting as unread, and a last message's preview
    /// becomes [`DELETED_PREVIEW`]. `None` when missing or already deleted.
    async fn delete_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;

    /// Adds (`add`) or removes `by`'s `emoji` reaction on message `id` of
    /// `conversation`, recording a `message.reaction` outbox event with the
    /// change; `Some((message, changed))` — `changed` false when it was
    /// already so — or `None` when the message is missing or deleted.
    /// Neither the conversation's preview nor its unread counts move.
    async fn react(
        &self,
        id: MessageId,
        conversation: ConversationId,
        by: Party,
        emoji: &str,
        add: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(Message, bool)>>;

    /// Sets the link preview of a message that is not deleted; `None` otherwise.
    async fn set_link_preview(&self, id: MessageId, preview: &LinkPreview) -> StoreResult<Option<Message>>;

    /// Messages of `party`'s conversations that may match `query`, newest
    /// first, before the `(created_at, id)` cursor; deleted ones never, nor
    /// internal notes for a customer. A
    /// store may return candidates that do not match (the caller checks
    /// with `search::is_match`), never miss one that does.
    async fn search_messages(
        &self,
        party: Party,
        query: &SearchQuery,
        before: Option<(DateTime<Utc>, MessageId)>,
        limit: usize,
    ) -> StoreResult<Vec<Message>>;
    /// Marks the other side's messages with `seq <= up_to` read for `reader`.
    async fn mark_read(&self, id: ConversationId, reader: Side, up_to: i64) -> StoreResult<ReadOutcome>;
    /// Moves one message from `sent` to `delivered`; true when it changed.
    async fn mark_delivered(&self, id: MessageId) -> StoreResult<bool>;
}
