//! Storage: the [`Store`] trait and its two implementations.
//!
//! - [`mongo::MongoStore`]: MongoDB (production; `omnibiz api` / `gateway`).
//! - [`sqlite::SqliteStore`]: an embedded SQLite file (the single-node default).
//!
//! Both create their indexes and unique constraints at start, idempotently,
//! and pass the same contract test suite (`shared/tests/store_contract.rs`).
//!
//! Invariants every implementation keeps:
//! - one conversation per `(business_owner_id, customer_id)`, also under
//!   concurrent create-or-get;
//! - each appended message gets the next `seq` of its conversation; `seq`
//!   strictly increases, and `(conversation_id, seq)` is unique;
//! - at most one message per `(conversation_id, client_message_id)`: a retry
//!   returns the stored message and changes nothing;
//! - `last_message` follows the highest `seq`, whatever order writers finish in;
//! - lists page with range cursors, never by skipping;
//! - every change a webhook can report records its outbox event in the same
//!   atomic write (see `crate::hooks`).

pub mod mongo;
pub mod parties;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::search::SearchQuery;
use crate::domain::{
    Attachment, Conversation, ConversationId, ConversationStatus, Customer, CustomerId, EndpointId, Message, MessageId,
    Priority, QuickReply, QuickReplyId, Side, UploadId, User, UserId,
};
use crate::files::Upload;
use crate::hooks::{Delivery, DeliveryStatus, Endpoint, OutboxEvent};

/// A store failure. `Unavailable` means the backend could not be reached (503);
/// anything else is a bug or data problem (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whose conversations to list.
pub use crate::domain::Party;

/// Position in a conversation list ordered by last activity, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityCursor {
    pub at: DateTime<Utc>,
    pub id: ConversationId,
}

#[derive(Debug, Clone)]
pub struct ConversationQuery {
    pub party: Party,
    /// Only conversations with these customers (a search result), when set.
    pub customers: Option<Vec<CustomerId>>,
    /// Only conversations older than this position.
    pub before: Option<ActivityCursor>,
    pub limit: usize,
}

/// A page of messages, always returned oldest → newest.
#[derive(Debug, Clone, Copy)]
pub struct MessageQuery {
    pub conversation_id: ConversationId,
    /// Only `seq < before` (the newest `limit` of those).
    pub before: Option<i64>,
    /// Only `seq > after` (the oldest `limit` of those). Wins over `before`'s
    /// "newest" choice when both are set.
    pub after: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct CustomerQuery {
    pub owner: UserId,
    /// Case-insensitive substring of name, email or phone.
    pub q: Option<String>,
    /// Newest first; only customers with an id below this one.
    pub before: Option<CustomerId>,
    pub limit: usize,
}

/// Who a new conversation is between, with the names the seed's Conversation
/// model keeps on the document (`businessOwnerName`, `customerName`, ...).
#[derive(Debug, Clone)]
pub struct Participants {
    pub owner: UserId,
    pub owner_name: String,
    pub customer: CustomerId,
    pub customer_name: String,
    pub customer_email: String,
    pub customer_phone: Option<String>,
}

impl Participants {
    pub fn of(owner: &User, customer: &Customer) -> Self {
        Self {
            owner: owner.id,
            owner_name: owner.business_name.clone().unwrap_or_else(|| owner.name.clone()),
            customer: customer.id,
            customer_name: customer.name.clone(),
            customer_email: customer.email.clone(),
            customer_phone: customer.phone.clone(),
        }
    }
}

/// A message to append; the store assigns `id`, `seq` and `status`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub sender_id: String,
    pub sender_side: Side,
    pub sender_name: String,
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl NewMessage {
    /// The message as stored with `seq`: a fresh id, status `sent`, the
    /// time at the millisecond (what both stores keep).
    pub fn into_stored(self, seq: i64) -> Message {
        Message {
            id: MessageId::new(),
            conversation_id: self.conversation_id,
            seq,
            sender_id: self.sender_id,
            sender_side: self.sender_side,
            sender_name: self.sender_name,
            content: self.content,
            attachments: self.attachments,
            client_message_id: self.client_message_id,
            status: crate::domain::MessageStatus::Sent,
            created_at: chrono::SubsecRound::trunc_subsecs(self.created_at, 3),
            edited_at: None,
            deleted: false,
        }
    }
}

/// The conversation list's preview of a deleted last message.
pub const DELETED_PREVIEW: &str = "This message was deleted";

/// What appending did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored now, with a fresh `seq`.
    Created(Message),
    /// A message with the same `client_message_id` was already stored; nothing changed.
    Existing(Message),
}

impl Appended {
    pub fn message(&self) -> &Message {
        match self {
            Self::Created(m) | Self::Existing(m) => m,
        }
    }
    pub fn into_message(self) -> Message {
        match self {
            Self::Created(m) | Self::Existing(m) => m,
        }
    }
}

/// Changes to a conversation's metadata; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    pub tags: Option<Vec<String>>,
    pub priority: Option<Priority>,
}

/// Result of marking messages read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The reader's read position after the call (never moves backwards).
    pub read_seq: i64,
    /// The reader's unread count after the call.
    pub unread: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs and `/readyz`.
    fn kind(&self) -> &'static str;
    /// Cheap round trip to the backend.
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()>;
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>>;
    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>>;
    async fn list_customers(&self, query: &CustomerQuery) -> StoreResult<Vec<Customer>>;

    /// Returns the conversation of this pair, creating it when missing. Safe
    /// under concurrency: parallel calls return the same conversation.
    async fn get_or_create_conversation(
        &self,
        who: &Participants,
        now: DateTime<Utc>,
    ) -> StoreResult<(Conversation, bool)>;
    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>>;
    async fn list_conversations(&self, query: &ConversationQuery) -> StoreResult<Vec<Conversation>>;
    /// The owner's conversations with these customers (for the customer list).
    async fn conversations_with(&self, owner: UserId, customers: &[CustomerId]) -> StoreResult<Vec<Conversation>>;
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;

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

    // --- Uploads (see `crate::files`): the record is written before the
    // object, claimed by one send, confirmed once its message is stored.

    async fn insert_upload(&self, upload: &Upload) -> StoreResult<()>;
    /// The object is written: its sniffed type, size and thumbnail. False when the record is gone.
    async fn finish_upload(&self, id: UploadId, mime_type: &str, size: u64, has_thumbnail: bool) -> StoreResult<bool>;
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

    // --- Quick replies (the seed's "chat templates"): unique shortcut per owner.

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

    /// Messages of `party`'s conversations that may match `query`, newest
    /// first, before the `(created_at, id)` cursor; deleted ones never. A
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

    // --- Webhooks (see `crate::hooks`). `append_message`, a created
    // `get_or_create_conversation`, `update_conversation` and an advancing
    // `mark_read` record their outbox event atomically with the change.

    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()>;
    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>>;
    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>>;
    /// Saves everything but the id, owner, secret and creation time; false when it is gone.
    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool>;
    /// Counts a failed attempt (`ok` false) or resets the streak; the streak after the call.
    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64>;
    /// Disables an enabled endpoint with a reason and pauses its pending
    /// deliveries; false when it was not enabled (another pod did it first).
    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Outbox events not fanned out yet, oldest first.
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    /// Stores the deliveries (ids already present are left alone) and marks the event done.
    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()>;
    /// [`Store::fan_out`] for a whole pass of events; a store may do it in fewer round trips.
    async fn fan_out_all(&self, batch: &[(OutboxEvent, Vec<Delivery>)]) -> StoreResult<()> {
        for (event, deliveries) in batch {
            self.fan_out(event, deliveries).await?;
        }
        Ok(())
    }
    /// Leases up to `limit` pending deliveries due by `now` whose lease (if
    /// any) expired: one holder at a time.
    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
    /// Writes an attempt's outcome (status, next time, log, attempt count)
    /// and releases the lease — only while `holder` still holds it.
    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// An endpoint's deliveries, newest first, after the `(created_at, id)` cursor.
    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;
    /// Makes a delivery pending again, due now, without its unread condition.
    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Moves an endpoint's deliveries from one status to another (pause, resume).
    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
