//! Emoji reactions: one of each emoji per person, a bounded set per message.

use chrono::Utc;
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{MAX_DISTINCT_REACTIONS, MessageId, parse_emoji};
use serde_json::json;
use tracing::instrument;

use super::conversations::refuse_if_blocked;
use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::bus::{EventKind, Topic};

impl Messaging {
    /// Adds (`add`) or removes the caller's `emoji` on a message of a
    /// conversation they take part in. The room hears `reaction_added` /
    /// `reaction_removed` (with the message's reactions after the change)
    /// when something changed; adding one twice or removing one never added
    /// changes nothing. Returns the message as it is now.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %id))]
    pub async fn react(&self, actor: &Actor, id: MessageId, emoji: &str, add: bool) -> ServiceResult<MessageView> {
        let emoji = parse_emoji(emoji).map_err(ServiceError::Invalid)?;
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(id).await?.ok_or_else(not_found)?;
        let (conv, side) = self.visible_conversation(actor, msg.conversation_id).await.map_err(|_| not_found())?;
        if msg.private && side != omnibiz_domain::Side::Owner {
            return Err(not_found());
        }
        refuse_if_blocked(&conv, side)?;
        let by = actor.principal.party();
        if add && !msg.reactions.iter().any(|r| r.emoji == emoji) {
            let distinct: std::collections::HashSet<&str> = msg.reactions.iter().map(|r| r.emoji.as_str()).collect();
            if distinct.len() >= MAX_DISTINCT_REACTIONS {
                return Err(ServiceError::Invalid(format!(
                    "a message carries at most {MAX_DISTINCT_REACTIONS} different emoji; react with one already there"
                )));
            }
        }
        let (now, changed) = self.store.react(id, conv.id, by, &emoji, add, Utc::now()).await?.ok_or_else(not_found)?;
        let view = MessageView::from(&now);
        if changed {
            let (kind, name) =
                if add { (EventKind::ReactionAdded, "added") } else { (EventKind::ReactionRemoved, "removed") };
            metrics::counter!("reactions_total", "action" => name).increment(1);
            let mut payload = json!({
                "conversationId": conv.id.to_hex(), "messageId": id.to_hex(), "emoji": emoji,
                "userId": actor.principal.id_hex(), "userRole": side.role_name(), "reactions": view.reactions,
            });
            if msg.private {
                // Gateways give it to the business side only.
                payload["isPrivate"] = true.into();
            }
            self.publish(Topic::Conversation(conv.id), kind, Some(conv.id), payload, None).await;
        }
        Ok(view)
    }
}
