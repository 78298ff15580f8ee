//! Every webhook event's id and body, decided here and nowhere else.
//!
//! A store records an [`OutboxEvent`](crate::webhook::OutboxEvent) with the
//! change that caused it (atomically); the webhook fan-out then fixes the
//! body that every attempt sends. When each part is built:
//!
//! | event | id | `data` built |
//! |---|---|---|
//! | `message.created` | [`message_created_id`] (`msg_<message id>`) | at fan-out, from the message as it is then ([`message_created_data`]) |
//! | `message.updated`, `message.deleted` | [`change_event_id`] | with the change ([`change_data`]) |
//! | `message.read` | [`new_event_id`] | with the change ([`message_read_data`]) |
//! | `conversation.created` | [`new_event_id`] | with the change (empty) |
//! | `conversation.updated` | [`new_event_id`] | with the change ([`conversation_updated_data`]) |
//! | `message.reaction` | [`reaction_event_id`] | with the change ([`reaction_data`]) |
//!
//! `message.created` is built at fan-out on both stores: an edit made before
//! the fan-out is in the body, and a message deleted before it goes out as
//! deleted, without its content (the contract suite pins this). The
//! envelope around `data` is [`body`].

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::conversation::ConversationPatch;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::message::Message;
use crate::party::Side;
use crate::views::{MessageView, iso};
use crate::webhook::{HookEvent, OutboxEvent};

const MESSAGE_PREFIX: &str = "msg_";

/// A fresh id for an event that has no natural one (`evt_<object id>`).
pub fn new_event_id() -> String {
    format!("evt_{}", bson::oid::ObjectId::new().to_hex())
}

/// The id of a message's `message.created` event: one per message, so a
/// retried send never records a second one.
pub fn message_created_id(message: MessageId) -> String {
    format!("{MESSAGE_PREFIX}{}", message.to_hex())
}

/// The message a `message.created` event id names.
pub fn message_of_event(id: &str) -> Option<MessageId> {
    id.strip_prefix(MESSAGE_PREFIX)?.parse().ok()
}

/// `message.created`'s data: the message as clients see it, read when the
/// event is fanned out.
pub fn message_created_data(message: &Message) -> Value {
    serde_json::to_value(MessageView::from(message)).unwrap_or_default()
}

/// `conversation.updated`'s data: the fields the change set.
pub fn conversation_updated_data(patch: &ConversationPatch) -> Value {
    let mut data = serde_json::Map::new();
    if let Some(s) = patch.status {
        data.insert("status".into(), s.as_str().into());
    }
    if let Some(p) = patch.priority {
        data.insert("priority".into(), p.as_str().into());
    }
    if let Some(t) = &patch.tags {
        data.insert("tags".into(), t.clone().into());
    }
    data.into()
}

/// `message.read`'s data: who read, and up to which `seq`.
pub fn message_read_data(reader: Side, up_to_seq: i64) -> Value {
    json!({"readerRole": reader.role_name(), "upToSeq": up_to_seq})
}

/// The data of `message.updated` / `message.deleted`.
pub fn change_data(
    kind: HookEvent,
    message: MessageId,
    conversation: ConversationId,
    content: Option<&str>,
    at: DateTime<Utc>,
) -> Value {
    let at = iso(at);
    match kind {
        HookEvent::MessageDeleted => json!({
            "messageId": message.to_hex(), "conversationId": conversation.to_hex(), "deletedAt": at,
        }),
        _ => json!({
            "messageId": message.to_hex(), "conversationId": conversation.to_hex(),
            "content": content.unwrap_or_default(), "editedAt": at,
        }),
    }
}

/// The event id of a message change (a BSON-safe key, unique per change).
pub fn change_event_id(kind: HookEvent, message: MessageId, at: DateTime<Utc>) -> String {
    let tag = if kind == HookEvent::MessageDeleted { "del" } else { "upd" };
    format!("{tag}_{}_{}", message.to_hex(), at.timestamp_micros())
}

/// The event id of a reaction added or removed (a BSON-safe key, unique per change).
pub fn reaction_event_id(message: MessageId, at: DateTime<Utc>) -> String {
    format!("rct_{}_{}", message.to_hex(), at.timestamp_micros())
}

/// `message.reaction`'s data: which emoji, by whom, added or removed.
pub fn reaction_data(
    message: MessageId,
    conversation: ConversationId,
    emoji: &str,
    by: crate::Party,
    added: bool,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "messageId": message.to_hex(), "conversationId": conversation.to_hex(),
        "emoji": emoji, "action": if added { "added" } else { "removed" },
        "userId": by.oid().to_hex(), "userRole": by.side().role_name(), "at": iso(at),
    })
}

/// The message a `message.updated` / `message.deleted` / `message.reaction` event id names.
pub fn changed_message_of_event(id: &str) -> Option<MessageId> {
    let rest = id.strip_prefix("upd_").or_else(|| id.strip_prefix("del_")).or_else(|| id.strip_prefix("rct_"))?;
    rest.split('_').next()?.parse().ok()
}

/// The JSON body of one delivery of an event, fixed at fan-out.
pub fn body(e: &OutboxEvent, id: &str, kind: HookEvent, owner: UserId, customer: &str) -> String {
    json!({
        "id": id,
        "type": kind.as_str(),
        "createdAt": iso(e.at),
        "businessOwnerId": owner.to_hex(),
        "customerId": customer,
        "conversationId": e.conversation.to_hex(),
        "data": e.data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_event_ids_round_trip() {
        let id = MessageId::new();
        assert_eq!(message_of_event(&message_created_id(id)), Some(id));
        assert_eq!(message_of_event(&new_event_id()), None);
        assert_ne!(new_event_id(), new_event_id());
        let at = Utc::now();
        for kind in [HookEvent::MessageUpdated, HookEvent::MessageDeleted] {
            assert_eq!(changed_message_of_event(&change_event_id(kind, id, at)), Some(id));
        }
        assert_eq!(changed_message_of_event(&message_created_id(id)), None);
        assert_eq!(changed_message_of_event(&reaction_event_id(id, at)), Some(id));
    }
}
