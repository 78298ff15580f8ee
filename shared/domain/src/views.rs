//! The JSON shapes clients see, shared by the REST API and the gateway. Field
//! names are the seed's (camelCase); timestamps are ISO 8601 with milliseconds,
//! like JavaScript's `toISOString()`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{Attachment, Conversation, Customer, Message, MessageStatus, Side, User};

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A view as JSON text, encoded once and then reused as is (spliced into
/// bus envelopes, responses and frames, never decoded).
pub fn raw_json<T: Serialize + ?Sized>(view: &T) -> Box<serde_json::value::RawValue> {
    // Our views are plain structs of strings, numbers and vectors: encoding
    // cannot fail; `null` keeps the function total.
    serde_json::value::to_raw_value(view).unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned())
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub sender_name: String,
    /// `business_owner` or `customer`.
    pub sender_role: &'static str,
    pub content: String,
    /// When it was stored (ISO 8601).
    pub timestamp: String,
    pub status: MessageStatus,
    /// Position in the conversation; strictly increasing. The cursor for paging and recovery.
    pub seq: i64,
    pub attachments: Vec<Attachment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// When the sender last edited it (ISO 8601); absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// Deleted by its sender: `content` is empty and `attachments` too (the seed's field).
    pub is_deleted: bool,
    /// Emoji reactions, in the order each emoji was first used; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionView>,
    /// The message this one replies to, as it is now (absent when not a reply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuoteView>,
    /// A card for its first link, once fetched (a `message_updated` brings it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_preview: Option<crate::message::LinkPreview>,
    /// An internal note of the business's team: only the business side
    /// ever receives it (absent on every other message).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_private: bool,
    /// Sent by a team member of the business rather than its owner: their
    /// role (`senderRole` stays `business_owner`, as the seed's model allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_team_role: Option<crate::TeamRole>,
    /// A record of the conversation itself (members joining or leaving a group).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_system: bool,
    /// In a group: who has read it (the seed's `readBy`), and `status` is
    /// `read` only once everyone else has. Absent in direct conversations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<Vec<ReadByView>>,
}

/// One reader of a group message: a member customer, or the business
/// (`userId` = the owner's id). `readAt`: when a customer's read position
/// last moved (at or after they read it); absent for the business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadByView {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<String>,
}

/// What a reply shows of the message it quotes, read when the reply is:
/// an edit of the original shows, a deleted original says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuoteView {
    pub message_id: String,
    /// The original's position: jump to it with `GET …/conversations/{id}?around=<seq>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// The original's first characters (up to 100), or its first file's name when it has no text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// The original's first attachment's thumbnail, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// The original was deleted: nothing of it is shown.
    pub is_deleted: bool,
}

impl QuoteView {
    /// Only the id (before the original is read).
    pub fn id_only(id: crate::MessageId) -> Self {
        Self {
            message_id: id.to_hex(),
            seq: None,
            sender_id: None,
            sender_name: None,
            excerpt: None,
            thumbnail_url: None,
            is_deleted: false,
        }
    }

    /// The quote of `original` as it is; `None` reads as deleted.
    pub fn of(id: crate::MessageId, original: Option<&Message>) -> Self {
        let Some(m) = original.filter(|m| !m.deleted) else {
            return Self { is_deleted: true, ..Self::id_only(id) };
        };
        let first = m.attachments.first();
        let excerpt = if m.content.trim().is_empty() {
            first.map(|a| a.name.clone())
        } else {
            Some(crate::preview(&m.content, 100))
        };
        Self {
            message_id: m.id.to_hex(),
            seq: Some(m.seq),
            sender_id: Some(m.sender_id.clone()),
            sender_name: Some(m.sender_name.clone()),
            excerpt,
            thumbnail_url: first.and_then(|a| a.thumbnail_url.clone()),
            is_deleted: false,
        }
    }
}

/// One emoji on a message: how many reacted with it, and who (so each
/// reader sees whether they did: their own id is in `reactedBy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    /// Ids of the people who reacted with it (a user's or a customer's).
    pub reacted_by: Vec<String>,
}

/// Reactions grouped by emoji, in first-use order.
pub fn reaction_views(reactions: &[crate::Reaction]) -> Vec<ReactionView> {
    let mut out: Vec<ReactionView> = Vec::new();
    for r in reactions {
        let who = r.by.oid().to_hex();
        match out.iter_mut().find(|v| v.emoji == r.emoji) {
            Some(v) => {
                v.count += 1;
                v.reacted_by.push(who);
            }
            None => out.push(ReactionView { emoji: r.emoji.clone(), count: 1, reacted_by: vec![who] }),
        }
    }
    out
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_hex(),
            conversation_id: m.conversation_id.to_hex(),
            sender_id: m.sender_id.clone(),
            sender_name: m.sender_name.clone(),
            sender_role: m.sender_side.role_name(),
            content: m.content.clone(),
            timestamp: iso(m.created_at),
            status: m.status,
            seq: m.seq,
            attachments: m.attachments.clone(),
            client_message_id: m.client_message_id.clone(),
            edited_at: m.edited_at.map(iso),
            is_deleted: m.deleted,
            reactions: reaction_views(&m.reactions),
            reply_to: m.reply_to.map(QuoteView::id_only),
            link_preview: if m.deleted { None } else { m.link_preview.clone() },
            is_private: m.private,
            sender_team_role: m.team_role,
            is_system: m.system,
            read_by: None,
        }
    }
}

/// A conversation as one participant sees it: `name`/`email`/`phone` are the
/// other side's, `unreadCount` is the viewer's; `tags` and `priority` are
/// the business's internal triage and appear in the owner's view only.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub last_message: Option<String>,
    pub last_message_time: Option<String>,
    /// The viewer's unread messages: their side's, or in a business with a
    /// team (and for a group's customer) the person's own.
    pub unread_count: i64,
    pub is_online: bool,
    /// `direct` (the seed's), or `group`: the business and several customers.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub customer_id: String,
    pub business_owner_id: String,
    pub status: crate::ConversationStatus,
    /// The business's own labels: in the owner's view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The business's own triage: in the owner's view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<crate::Priority>,
    /// Archived by the viewer (their own choice; for the business also the
    /// seed's `status: archived`).
    pub archived: bool,
    /// Highest message `seq` so far.
    pub last_seq: i64,
    pub created_at: String,
    pub updated_at: String,
    /// The user id of the team member (or owner) it is assigned to: in the
    /// business's view only, absent when unassigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// A group's customers, with their names and who is online. Absent for a direct one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<GroupMemberView>>,
}

/// One customer of a group.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMemberView {
    pub id: String,
    pub name: String,
    pub is_online: bool,
}

/// Who is on the other side of a conversation, for the viewer.
#[derive(Debug, Clone)]
pub struct Counterpart {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

impl From<&Customer> for Counterpart {
    fn from(c: &Customer) -> Self {
        Self { name: c.name.clone(), email: c.email.clone(), phone: c.phone.clone() }
    }
}

impl From<&User> for Counterpart {
    fn from(u: &User) -> Self {
        Self {
            name: u.business_name.clone().unwrap_or_else(|| u.name.clone()),
            email: u.email.clone(),
            phone: u.phone.clone(),
        }
    }
}

impl Counterpart {
    /// For a record that no longer exists.
    pub fn unknown() -> Self {
        Self { name: "Unknown".into(), email: String::new(), phone: None }
    }
}

impl ConversationView {
    pub fn new(c: &Conversation, viewer: Side, other: &Counterpart, is_online: bool) -> Self {
        Self {
            id: c.id.to_hex(),
            name: other.name.clone(),
            email: other.email.clone(),
            phone: other.phone.clone(),
            last_message: c.last_message.clone(),
            last_message_time: c.last_message_time.map(iso),
            unread_count: c.unread.get(viewer),
            is_online,
            kind: if c.group.is_some() { "group" } else { "direct" },
            customer_id: c.customer_id.to_hex(),
            business_owner_id: c.business_owner_id.to_hex(),
            status: c.status,
            tags: (viewer == Side::Owner).then(|| c.tags.clone()),
            priority: (viewer == Side::Owner).then_some(c.priority),
            archived: c.archived_for(viewer),
            last_seq: c.last_seq,
            created_at: iso(c.created_at),
            updated_at: iso(c.updated_at),
            assignee: c.assignee.filter(|_| viewer == Side::Owner).map(|a| a.to_hex()),
            members: None,
        }
    }
}

/// A customer in the business owner's list, with order stats and chat state.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub total_orders: i64,
    pub total_spent: f64,
    /// When the customer last signed in (the seed's `lastLogin`); null when never recorded.
    pub last_login: Option<String>,
    /// When the customer joined (the seed's `joinedDate`; the record's creation time).
    pub joined_date: String,
    pub last_order_date: Option<String>,
    pub created_at: String,
    pub has_conversation: bool,
    pub conversation_id: Option<String>,
    pub unread_count: i64,
    pub is_online: bool,
}

impl CustomerView {
    pub fn new(c: &Customer, conv: Option<&Conversation>, is_online: bool) -> Self {
        Self {
            id: c.id.to_hex(),
            name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            total_orders: c.total_orders,
            total_spent: c.total_spent,
            last_login: c.last_login.map(iso),
            joined_date: iso(c.created_at),
            last_order_date: c.last_order_date.map(iso),
            created_at: iso(c.created_at),
            has_conversation: conv.is_some(),
            conversation_id: conv.map(|c| c.id.to_hex()),
            unread_count: conv.map_or(0, |c| c.unread.get(Side::Owner)),
            is_online,
        }
    }
}
