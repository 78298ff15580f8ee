//! A conversation between a business (its owner and team) and one customer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, CustomerId, UserId};
use crate::party::PerSide;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Active,
    Archived,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

str_enum!(ConversationStatus { Active => "active", Archived => "archived", Blocked => "blocked" });
str_enum!(Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" });

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub business_owner_id: UserId,
    pub customer_id: CustomerId,
    pub status: ConversationStatus,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub last_message: Option<String>,
    pub last_message_time: Option<DateTime<Utc>>,
    /// `seq` of the message in `last_message` (0 when none).
    pub last_message_seq: i64,
    /// Highest `seq` handed out in this conversation.
    pub last_seq: i64,
    pub unread: PerSide,
    /// Highest `seq` each side has read.
    pub read_seq: PerSide,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Which side archived it for itself.
    pub archived: Archived,
    /// The team member (or the owner) it is assigned to; `None`: unassigned.
    pub assignee: Option<UserId>,
    /// A group's title and customers; `None` for a direct conversation.
    pub group: Option<Group>,
}

/// What makes a conversation a group: the business (its team) and several
/// of its customers. A group's `customer_id` is its own id (no customer has
/// it), so the one-conversation-per-customer rule never touches groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub title: String,
    /// The customers in it now, in the order they joined.
    pub members: Vec<CustomerId>,
}

/// Most customers one group holds.
pub const MAX_GROUP_MEMBERS: usize = 50;

/// Checks a group's title: 1–100 characters, not only spaces.
pub fn group_title(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err("title: 1 to 100 characters, no control characters".into());
    }
    Ok(t.to_owned())
}

/// Who archived a conversation for themselves. Each side's own: archiving
/// does not touch the other side's view, and a new message from the other
/// side brings it back for its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Archived {
    pub owner: bool,
    pub customer: bool,
}

impl Archived {
    pub fn get(self, side: crate::Side) -> bool {
        match side {
            crate::Side::Owner => self.owner,
            crate::Side::Customer => self.customer,
        }
    }
}

impl Conversation {
    /// Whether `side` sees it as archived: its own flag, or — for the
    /// business — the seed's conversation-level `status: archived`.
    pub fn archived_for(&self, side: crate::Side) -> bool {
        self.archived.get(side) || (side == crate::Side::Owner && self.status == ConversationStatus::Archived)
    }

    /// A fresh, empty conversation between an owner and one of their customers.
    pub fn new(owner: UserId, customer: CustomerId, now: DateTime<Utc>) -> Self {
        Self {
            id: ConversationId::new(),
            business_owner_id: owner,
            customer_id: customer,
            status: ConversationStatus::Active,
            tags: Vec::new(),
            priority: Priority::Normal,
            last_message: None,
            last_message_time: None,
            last_message_seq: 0,
            last_seq: 0,
            unread: PerSide::default(),
            read_seq: PerSide::default(),
            created_at: now,
            updated_at: now,
            archived: Archived::default(),
            assignee: None,
            group: None,
        }
    }

    /// A fresh group of `business` with these customers.
    pub fn new_group(business: UserId, title: String, members: Vec<CustomerId>, now: DateTime<Utc>) -> Self {
        let mut c = Self::new(business, CustomerId::new(), now);
        c.customer_id = CustomerId(c.id.oid());
        c.group = Some(Group { title, members });
        c
    }

    /// Whether `customer` takes part: the direct conversation's customer, or a group's member.
    pub fn has_customer(&self, customer: CustomerId) -> bool {
        match &self.group {
            Some(g) => g.members.contains(&customer),
            None => self.customer_id == customer,
        }
    }

    /// Whether `customer_id` marks a group (its own id) rather than a customer.
    pub fn is_group_marker(id: ConversationId, customer: CustomerId) -> bool {
        id.oid() == customer.oid()
    }

    /// The activity time lists are ordered by: the last message, else creation.
    pub fn activity_time(&self) -> DateTime<Utc> {
        self.last_message_time.unwrap_or(self.created_at)
    }
}

/// Changes to a conversation's metadata; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    pub tags: Option<Vec<String>>,
    pub priority: Option<Priority>,
}
