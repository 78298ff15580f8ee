//! Storage: the [`Store`] trait, the sum of one trait per aggregate
//! ([`AccountStore`], [`ConversationStore`], [`MessageStore`], [`UploadStore`],
//! [`QuickReplyStore`], [`WebhookStore`], [`SessionStore`], [`NotificationStore`], [`TeamStore`]), and its two implementations, laid
//! out file for file by aggregate:
//!
//! - [`mongo::MongoStore`]: MongoDB (production; `omnibiz api` / `gateway`).
//! - [`sqlite::SqliteStore`]: an embedded SQLite file (the single-node default).
//!
//! Both create their indexes and unique constraints at start, idempotently,
//! and pass the same contract test suite (`shared/store/tests/store_contract.rs`).
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
//!   atomic write, with the ids and bodies of `omnibiz_domain::events`.
//!
//! Depends on `omnibiz-domain` only: no bus, no service, no HTTP.

mod accounts;
mod conversations;
pub mod fixtures;
mod messages;
pub mod mongo;
mod notifications;
pub mod parties;
mod quick_replies;
mod sessions;
pub mod sqlite;
mod teams;
mod uploads;
mod webhooks;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use accounts::AccountStore;
pub use conversations::ConversationStore;
pub use messages::MessageStore;
pub use notifications::NotificationStore;
pub use omnibiz_domain::ConversationPatch;
pub use quick_replies::QuickReplyStore;
pub use sessions::SessionStore;
pub use teams::{Joined, TeamStore};
pub use uploads::UploadStore;
pub use webhooks::{OwnerShare, WebhookStore};

use omnibiz_domain::{Attachment, ConversationId, Customer, CustomerId, Message, MessageId, Side, User, UserId};

/// The store traits, for calling their methods on an `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::{
        AccountStore, ConversationStore, MessageStore, NotificationStore, QuickReplyStore, SessionStore, Store,
        TeamStore, UploadStore, WebhookStore,
    };
}

/// A store failure. `Unavailable` means the backend could not be reached (503);
/// anything else is a bug or data problem (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The query ran past its time limit (a search the database gave up on).
    #[error("{0}")]
    TimedOut(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whose conversations to list.
pub use omnibiz_domain::Party;

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
    /// Only those the party has archived (`Some(true)`) or not (`Some(false)`); all when `None`.
    pub archived: Option<bool>,
    /// Which of the business's conversations, by assignee (owner side only).
    pub assigned: Assigned,
    pub limit: usize,
}

/// A conversation list's filter by assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assigned {
    #[default]
    Any,
    Unassigned,
    To(UserId),
    /// Assigned to this one or to no one (what an agent sees).
    ToOrNobody(UserId),
}

/// How many of a business's conversations (not archived by it) are
/// assigned to whom: for the list's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssignmentCounts {
    pub all: u64,
    pub mine: u64,
    pub unassigned: u64,
}

impl MessageQuery {
    /// The newest `limit` messages of a conversation, internal notes included.
    pub fn latest(conversation_id: ConversationId, limit: usize) -> Self {
        Self { conversation_id, before: None, after: None, limit, include_private: true }
    }
}

/// How many conversations a party has, active and archived (for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversationCounts {
    pub active: u64,
    pub archived: u64,
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
    /// Internal notes too (the business side's reads); false for a customer.
    pub include_private: bool,
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
    /// The message it replies to (checked by the caller: same conversation).
    pub reply_to: Option<MessageId>,
    /// The business a team member sends for: the participant the store
    /// checks (`sender_id` is then the member, who is no participant).
    pub acting_for: Option<UserId>,
    /// The member's role, when a team member sends.
    pub team_role: Option<omnibiz_domain::TeamRole>,
    /// An internal note: takes a `seq`, but moves neither the preview, the
    /// activity order, the unread counts nor anyone's archive flag.
    pub private: bool,
    /// A record of the conversation itself (a group's members changing):
    /// seen by everyone, but counted like a note (no preview, no unread).
    pub system: bool,
}

impl NewMessage {
    /// Whether it leaves the conversation's counters alone (a note or a system record).
    pub fn quiet(&self) -> bool {
        self.private || self.system
    }
}

/// One customer's read position in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRead {
    pub customer: CustomerId,
    pub read_seq: i64,
    /// When it last moved.
    pub at: DateTime<Utc>,
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
            status: omnibiz_domain::MessageStatus::Sent,
            created_at: chrono::SubsecRound::trunc_subsecs(self.created_at, 3),
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            reply_to: self.reply_to,
            link_preview: None,
            private: self.private,
            team_role: self.team_role,
            system: self.system,
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

/// A conversation whose unread count a person of a team asks for
/// ([`ConversationStore::team_unread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamReadFrom {
    pub conversation: ConversationId,
    /// Its `last_seq` (a position there needs no counting).
    pub last_seq: i64,
    /// Where a first position starts: the business's read position.
    pub start: i64,
}

/// Result of marking messages read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The reader's read position after the call (never moves backwards).
    pub read_seq: i64,
    /// The reader's unread count after the call.
    pub unread: i64,
}

/// Everything a backend stores: the sum of the per-aggregate traits. A
/// component that needs one aggregate takes that trait
/// (`Arc<dyn UploadStore>`), not the whole store; an `Arc<dyn Store>`
/// converts into any of them.
#[async_trait]
pub trait Store:
    AccountStore
    + ConversationStore
    + MessageStore
    + UploadStore
    + QuickReplyStore
    + WebhookStore
    + SessionStore
    + NotificationStore
    + TeamStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is, for logs and `/readyz`.
    fn kind(&self) -> &'static str;
    /// Cheap round trip to the backend.
    async fn ping(&self) -> StoreResult<()>;
}
