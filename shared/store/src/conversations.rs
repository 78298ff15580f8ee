//! Conversations: one per owner and customer, created on first contact; listed by last activity.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::{Conversation, ConversationId, ConversationPatch, CustomerId, Party, Side, UserId};

use crate::{
    AssignmentCounts, ConversationCounts, ConversationQuery, MemberRead, Participants, ReadOutcome, StoreResult,
    TeamReadFrom,
};

#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
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
    /// Archives (or unarchives) the conversation for `side` only; unarchiving
    /// it for the owner also reopens a conversation whose status is
    /// `archived`. `None` when it does not exist.
    async fn set_archived(
        &self,
        id: ConversationId,
        side: Side,
        archived: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;
    /// The party's conversations, active and archived for them.
    async fn conversation_counts(&self, party: Party) -> StoreResult<ConversationCounts>;
    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;
    /// Assigns the conversation to `assignee` (`None`: unassigns). `None`
    /// when it does not exist.
    async fn set_assignee(
        &self,
        id: ConversationId,
        assignee: Option<UserId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;
    /// Assigns the conversation to `assignee` only while it is unassigned
    /// (automatic assignment racing another): `None` when it was not.
    async fn claim_unassigned(
        &self,
        id: ConversationId,
        assignee: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;
    /// How many of the business's conversations it has not archived are
    /// assigned to `me`, to no one, and in all.
    async fn assignment_counts(&self, business: UserId, me: UserId) -> StoreResult<AssignmentCounts>;
    /// Stores a new group ([`Conversation::new_group`]), with its
    /// `conversation.created` outbox event.
    async fn create_group(&self, group: &Conversation) -> StoreResult<()>;
    /// Replaces a group's customers; a removed one's read position goes
    /// with them. `None` when no such group.
    async fn set_group_members(
        &self,
        id: ConversationId,
        members: &[CustomerId],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>>;
    /// The read positions of a group's customers (those who have read something).
    async fn group_reads(&self, id: ConversationId) -> StoreResult<Vec<MemberRead>>;
    /// Moves `customer`'s read position in a group up to `up_to` (never
    /// back); their unread count after it: the others' messages above it
    /// (neither notes, system records nor deleted ones).
    async fn mark_member_read(
        &self,
        id: ConversationId,
        customer: CustomerId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome>;
    /// Moves a business-side person's own read position in `id` (the
    /// owner's or a team member's, beside the business's shared one) up to
    /// `up_to` (never back); their unread count after it: the customers'
    /// messages above it (neither notes, system records nor deleted ones).
    async fn mark_team_read(
        &self,
        id: ConversationId,
        user: UserId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome>;
    /// `user`'s own unread count in each of `convs`. A conversation they
    /// have no position in yet gets one at `start` first (the business's
    /// read position when they first see it): from then on it is theirs.
    async fn team_unread(&self, user: UserId, convs: &[TeamReadFrom]) -> StoreResult<Vec<(ConversationId, i64)>>;
    /// Forgets `user`'s own read positions (they left the team).
    async fn forget_team_reads(&self, user: UserId) -> StoreResult<()>;
}
