//! The event bus: how a stored change reaches the gateways holding the
//! connections that care about it.
//!
//! # Topics and channels
//! One topic per conversation and one per principal. On Redis each is a
//! pub/sub channel whose hash tag keeps it on one cluster slot:
//!
//! | topic | channel |
//! |---|---|
//! | conversation | `omnibiz:{conv:<id>}` |
//! | user (business owner) | `omnibiz:{user:<id>}` |
//! | customer | `omnibiz:{customer:<id>}` |
//!
//! # Envelope (version 1)
//! Every message on a channel is one JSON object:
//! ```json
//! {"v":1,"kind":"message.created","conversationId":"…","origin":"api-7f…","ts":1732500000123,"payload":{…}}
//! ```
//! - `v`: envelope version; consumers ignore versions they do not know.
//! - `kind`: see [`EventKind`]; `payload` is the Socket.IO payload of that event,
//!   already in the client's JSON shape. Gateways relay it as raw JSON: it is
//!   never decoded into a tree, only scanned once for the few fields routing
//!   needs ([`PayloadMeta`]), and spliced into the outgoing frame as is.
//! - `conversationId`: set for conversation events.
//! - `origin`: the publishing process (lets a gateway skip its own echoes).
//! - `ts`: publish time in Unix milliseconds (for delivery-latency metrics).
//!
//! Another service can publish by writing such an object to the channel.
//! Store first, then publish: a lost publish loses no data, because clients
//! recover by `seq` when they rejoin, and a gateway whose subscriber was
//! away (or fell behind) re-fetches what its live rooms missed from the
//! store once it is back ([`Bus::resyncs`]), delivering each message once.

pub mod local;
pub mod redis;

use std::borrow::Cow;

use async_trait::async_trait;
use omnibiz_domain::{ConversationId, Party};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Principal;

/// Current envelope version.
pub const ENVELOPE_VERSION: u8 = 1;

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Conversation(ConversationId),
    /// A principal's personal topic (all their sockets).
    Principal(Party),
}

impl Topic {
    pub fn principal(p: &Principal) -> Self {
        Self::Principal(p.party())
    }

    /// The Redis channel name, `omnibiz:{conv:<id>}` / `omnibiz:{user:<id>}` / …
    pub fn channel(&self) -> String {
        match self {
            Self::Conversation(id) => format!("omnibiz:{{conv:{id}}}"),
            Self::Principal(p) => format!("omnibiz:{{{}}}", p.room()),
        }
    }

    /// Parses a channel name back into a topic.
    pub fn from_channel(channel: &str) -> Option<Self> {
        let inner = channel.strip_prefix("omnibiz:{")?.strip_suffix('}')?;
        if let Some(id) = inner.strip_prefix("conv:") {
            return id.parse().ok().map(Self::Conversation);
        }
        Party::from_room(inner).map(Self::Principal)
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A new message; payload = the message (`message_received`).
    #[serde(rename = "message.created")]
    MessageCreated,
    /// Someone read up to a seq; payload = `{conversationId, readerId, upToSeq}`.
    #[serde(rename = "conversation.read")]
    ConversationRead,
    /// A message changed status; payload = `{conversationId, messageId, status}`.
    #[serde(rename = "message.status")]
    MessageStatus,
    /// A message was edited; payload = the message (`message_updated`).
    #[serde(rename = "message.updated")]
    MessageUpdated,
    /// A message was deleted; payload = `{conversationId, messageId, seq}` (`message_deleted`).
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// Conversation metadata changed; payload = the conversation.
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    /// A new message for a principal; payload = `{conversationId, from, preview}`.
    #[serde(rename = "notification")]
    Notification,
    /// Typing started (`user_typing`) or stopped (`user_stopped_typing`).
    #[serde(rename = "typing.start")]
    TypingStart,
    #[serde(rename = "typing.stop")]
    TypingStop,
    /// A principal came online or went offline; payload = `{userId, online}`.
    #[serde(rename = "presence")]
    Presence,
    /// A principal's sessions were revoked: gateways close its sockets;
    /// payload = `{reason, revokedAt}`. Other services may publish it too
    /// (an account deleted or blocked in the main app).
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// Someone reacted to a message (`reaction_added`); payload =
    /// `{conversationId, messageId, emoji, userId, userRole, reactions}`.
    #[serde(rename = "reaction.added")]
    ReactionAdded,
    /// A reaction was taken back (`reaction_removed`); same payload.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved,
    /// A conversation's assignee changed (`conversation_assigned`); payload =
    /// `{conversationId, assignee, previous, assignedBy, isPrivate: true}`
    /// (`assignee`/`previous` null when none). On the conversation's topic
    /// (the business side's members; an agent who may no longer see it
    /// leaves the room) and on the business's team members' own topics.
    #[serde(rename = "conversation.assigned")]
    ConversationAssigned,
    /// The business's team changed (`team_updated`); payload = `{business,
    /// change: added|updated|removed|settings, userId?, role?}`, on the
    /// owner's and every member's own topic.
    #[serde(rename = "team.updated")]
    TeamUpdated,
    /// A group's customers changed (`group_members_changed`); payload =
    /// `{conversationId, title, members, added, removed}`. On the group's
    /// topic (a removed customer's sockets leave the room) and on the
    /// business's and every added or removed customer's own topic.
    #[serde(rename = "group.members")]
    GroupMembersChanged,
}

/// The versioned bus envelope (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub v: u8,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The connection an event came from (`<origin>/<socket id>`), so the
    /// gateway holding it does not echo it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub ts: i64,
    /// W3C trace context of the publish, when traces are exported: the
    /// delivering gateways' spans continue its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The client-shaped payload, kept as JSON text.
    pub payload: Box<RawValue>,
}

/// The fields of a payload that routing looks at: the message's `seq` and
/// sender, the `userId` of typing and presence events.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadMeta<'a> {
    pub seq: Option<i64>,
    #[serde(borrow)]
    pub sender_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub sender_role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
    /// The business side's only (an internal note, or what concerns one):
    /// never given to a customer's socket.
    pub is_private: Option<bool>,
    /// Of `conversation.assigned`: who it is assigned to now.
    #[serde(borrow)]
    pub assignee: Option<Cow<'a, str>>,
    /// Of `group.members`: the customers who left.
    #[serde(default)]
    pub removed: Vec<Cow<'a, str>>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        (self.v, self.kind, &self.conversation_id, &self.origin, &self.source, self.ts, self.payload.get())
            == (
                other.v,
                other.kind,
                &other.conversation_id,
                &other.origin,
                &other.source,
                other.ts,
                other.payload.get(),
            )
    }
}

impl Envelope {
    pub fn new(kind: EventKind, conversation: Option<ConversationId>, payload: serde_json::Value) -> Self {
        // Serializing a Value cannot fail; `null` keeps the type total.
        let payload = serde_json::value::to_raw_value(&payload).unwrap_or_default();
        Self::from_raw(kind, conversation, payload)
    }

    /// With a payload already encoded (taken as is).
    pub fn from_raw(kind: EventKind, conversation: Option<ConversationId>, payload: Box<RawValue>) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            kind,
            conversation_id: conversation.map(|c| c.to_hex()),
            origin: None,
            source: None,
            ts: chrono::Utc::now().timestamp_millis(),
            traceparent: None,
            payload,
        }
    }

    /// Routing fields of the payload, read without building a JSON tree
    /// (empty if the payload is not an object).
    pub fn meta(&self) -> PayloadMeta<'_> {
        serde_json::from_str(self.payload.get()).unwrap_or_default()
    }
}

/// A bus failure (Redis unreachable, …). Never fatal for a send: the data is stored.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0:#}")]
pub struct BusError(#[from] pub anyhow::Error);

/// One event as a subscriber receives it.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: Topic,
    pub envelope: std::sync::Arc<Envelope>,
}

/// Why a subscriber should fetch what it may have missed (see [`Bus::resyncs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The connection came back with no subscriptions.
    Reconnected,
    /// The reader fell behind and dropped events.
    Lagged,
}

/// A consumer called with each event as it is read (see [`Bus::deliver_to`]).
pub type Sink = std::sync::Arc<dyn Fn(&Published) + Send + Sync>;

/// Publishes events and delivers the subscribed topics' events.
/// Implementations: [`local::LocalBus`] (in-process), [`redis::RedisBus`].
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Checks the backend is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
    async fn publish(&self, topic: &Topic, envelope: &Envelope) -> Result<(), BusError>;
    /// Starts receiving `topic`'s events; returns once the backend confirmed.
    async fn subscribe(&self, topic: &Topic) -> Result<(), BusError>;
    async fn unsubscribe(&self, topic: &Topic) -> Result<(), BusError>;
    /// The stream of events of subscribed topics. A receiver that lags too
    /// far behind misses events (and is told so by `RecvError::Lagged`).
    fn deliveries(&self) -> tokio::sync::broadcast::Receiver<Published>;

    /// Asks the bus to hand every event of a subscribed topic to `sink`
    /// itself, in the task that reads them off the backend, instead of
    /// through [`Bus::deliveries`]: one hand-off fewer per event. `false`
    /// when this bus does not (the in-process bus) or already has a sink;
    /// the caller then reads [`Bus::deliveries`]. The sink must not block.
    fn deliver_to(&self, _sink: Sink) -> bool {
        false
    }

    /// Fires when events may have been missed: the bus is back from a
    /// connection loss ([`Resync::Reconnected`]: the subscriber then
    /// subscribes its topics again with [`Bus::resubscribe`]) or its reader
    /// fell behind ([`Resync::Lagged`]). Either way subscribers should fetch
    /// what they missed from the store. `None` for a bus that cannot lose
    /// events (in-process).
    fn resyncs(&self) -> Option<tokio::sync::broadcast::Receiver<Resync>> {
        None
    }

    /// Subscribes `topics` again after [`Resync::Reconnected`]. The bus keeps
    /// no list of its own: the subscriber's reference counts are the one
    /// record (a second copy cost ≈ 0.15 KiB per topic, i.e. per socket).
    async fn resubscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        for t in topics {
            self.subscribe(t).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let c = ConversationId::new();
        let t = Topic::Conversation(c);
        assert_eq!(t.channel(), format!("omnibiz:{{conv:{c}}}"));
        assert_eq!(Topic::from_channel(&t.channel()), Some(t));
        let p = Topic::Principal(omnibiz_domain::Party::Customer("65a1b2c3d4e5f60718293a4b".parse().expect("id")));
        assert_eq!(p.channel(), "omnibiz:{customer:65a1b2c3d4e5f60718293a4b}");
        assert_eq!(Topic::from_channel(&p.channel()), Some(p));
        assert_eq!(Topic::from_channel("other:{x}"), None);
        assert_eq!(Topic::from_channel("omnibiz:{user:not-an-id}"), None);
    }

    #[test]
    fn envelope_json_shape() {
        let e = Envelope::new(EventKind::MessageCreated, None, serde_json::json!({"a": 1}));
        let v = serde_json::to_value(&e).expect("encode");
        assert_eq!(v["v"], 1);
        assert_eq!(v["kind"], "message.created");
        assert_eq!(v["payload"], serde_json::json!({"a": 1}));
        assert!(v.get("conversationId").is_none());
        let back: Envelope = serde_json::from_value(v).expect("decode");
        assert_eq!(back, e);
    }

    #[test]
    fn meta_reads_routing_fields_only() {
        let payload = serde_json::json!({
            "id": "m1", "seq": 42, "senderId": "65a1b2c3d4e5f60718293a4b", "senderRole": "customer",
            "content": "with \"escapes\" and ünïcode", "attachments": [{"url": "x"}]
        });
        let e = Envelope::new(EventKind::MessageCreated, None, payload);
        let m = e.meta();
        assert_eq!(m.seq, Some(42));
        assert_eq!(m.sender_id.as_deref(), Some("65a1b2c3d4e5f60718293a4b"));
        assert_eq!(m.sender_role.as_deref(), Some("customer"));
        assert!(m.user_id.is_none());
        let typing = Envelope::new(EventKind::TypingStart, None, serde_json::json!({"userId": "u1"}));
        assert_eq!(typing.meta().user_id.as_deref(), Some("u1"));
        let odd = Envelope::new(EventKind::Presence, None, serde_json::json!([1, 2]));
        assert!(odd.meta().seq.is_none(), "not an object: no fields, no panic");
    }
}
