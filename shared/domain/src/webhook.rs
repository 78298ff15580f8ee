//! Webhook endpoints, the events they hear about and their deliveries (how
//! events travel: `omnibiz_service::webhooks`; their ids and bodies: [`crate::events`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, EndpointId, SubscriptionId, UserId};
use crate::party::{Party, Side};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum HookEvent {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.read")]
    MessageRead,
    #[serde(rename = "message.unread")]
    MessageUnread,
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    #[serde(rename = "message.updated")]
    MessageUpdated,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "message.reaction")]
    MessageReaction,
}

impl HookEvent {
    pub const ALL: [Self; 8] = [
        Self::MessageCreated,
        Self::MessageRead,
        Self::MessageUnread,
        Self::ConversationCreated,
        Self::ConversationUpdated,
        Self::MessageUpdated,
        Self::MessageDeleted,
        Self::MessageReaction,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::MessageRead => "message.read",
            Self::MessageUnread => "message.unread",
            Self::ConversationCreated => "conversation.created",
            Self::ConversationUpdated => "conversation.updated",
            Self::MessageUpdated => "message.updated",
            Self::MessageDeleted => "message.deleted",
            Self::MessageReaction => "message.reaction",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A business owner's webhook endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub owner: UserId,
    pub url: String,
    /// `whsec_…`; shown to the owner once, when created.
    pub secret: String,
    pub events: Vec<HookEvent>,
    pub description: String,
    pub enabled: bool,
    /// Why it was disabled automatically (`None` when enabled, or disabled by its owner).
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row (reset by a success).
    pub failure_streak: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn wants(&self, e: HookEvent) -> bool {
        self.events.contains(&e)
    }
}

/// An event recorded with the change that caused it, not yet fanned out.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Stable across retries: `msg_<message id>` or `evt_<object id>`.
    pub id: String,
    pub kind: HookEvent,
    pub conversation: ConversationId,
    pub at: DateTime<Utc>,
    /// Event-specific fields (the message for `message.created`; `{readerRole, upToSeq}`; …).
    pub data: serde_json::Value,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`nextAttemptAt`).
    Pending,
    Succeeded,
    /// Every attempt of the retry schedule failed.
    Failed,
    /// A `message.unread` whose recipient was online or had read it.
    Skipped,
    /// Its endpoint is disabled; resumes when it is enabled.
    Paused,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Paused => "paused",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Skipped, Self::Paused]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One try at a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed without a status (timeout, connection refused, refused address…).
    pub error: Option<String>,
    /// The first 512 characters of the response body.
    pub response: Option<String>,
}

/// When `message.unread` may be sent: the recipient has not read `seq` (and is offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCheck {
    /// Who should have read it: the business owner (`true`) or the customer.
    pub recipient_owner: bool,
    pub seq: i64,
    /// In a group: the customer who should have read it (by their own read
    /// position, while still a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<crate::CustomerId>,
}

/// Where a delivery goes. Webhooks, push notifications and notification
/// emails share the outbox, the leases, the retries and the per-owner
/// fairness; only the last step differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A business owner's webhook endpoint.
    Webhook(EndpointId),
    /// One browser's push subscription.
    Push(SubscriptionId),
    /// An email to this person.
    Email(Party),
}

impl Target {
    /// The stored name of the channel (`webhook`, `push`, `email:owner`, `email:customer`).
    pub fn channel(self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Push(_) => "push",
            Self::Email(p) if p.side() == Side::Owner => "email:owner",
            Self::Email(_) => "email:customer",
        }
    }

    /// The id stored beside the channel.
    pub fn oid(self) -> bson::oid::ObjectId {
        match self {
            Self::Webhook(id) => id.oid(),
            Self::Push(id) => id.oid(),
            Self::Email(p) => p.oid(),
        }
    }

    /// The inverse of [`Target::channel`] and [`Target::oid`]; a missing channel is a webhook.
    pub fn from_parts(channel: Option<&str>, id: bson::oid::ObjectId) -> Option<Self> {
        Some(match channel.unwrap_or("webhook") {
            "webhook" => Self::Webhook(EndpointId(id)),
            "push" => Self::Push(SubscriptionId(id)),
            "email:owner" => Self::Email(Party::of(Side::Owner, id)),
            "email:customer" => Self::Email(Party::of(Side::Customer, id)),
            _ => return None,
        })
    }
}

/// One event for one endpoint (or one browser, or one inbox: see [`Target`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `<event id>.<endpoint id>` for webhooks; see `omnibiz_service::notify` for the others.
    pub id: String,
    pub target: Target,
    pub owner: UserId,
    pub event_id: String,
    pub kind: HookEvent,
    pub conversation: ConversationId,
    /// The exact JSON body sent on every attempt.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest attempts, oldest first (at most [`LOG_LIMIT`]).
    pub log: Vec<Attempt>,
    pub unread_check: Option<UnreadCheck>,
}

/// Attempts kept per delivery.
pub const LOG_LIMIT: usize = 20;
