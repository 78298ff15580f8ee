//! Read and delivery receipts.

use omnibiz_domain::{Conversation, ConversationId, MessageId, Side};
use omnibiz_store::ReadOutcome;
use serde_json::json;
use tracing::instrument;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::bus::{EventKind, Topic};

/// Outcome of a mark-read.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub conversation_id: String,
    pub up_to_seq: i64,
    /// The reader's unread count now (a team member's own).
    pub unread_count: i64,
}

impl Messaging {
    pub(super) async fn read_up_to(
        &self,
        actor: &Actor,
        conv: &Conversation,
        side: Side,
        seq: i64,
    ) -> ServiceResult<ReadReceipt> {
        let now = chrono::Utc::now();
        let ReadOutcome { read_seq, mut unread } = match (&conv.group, actor.principal) {
            // In a group each customer reads for themselves.
            (Some(_), crate::auth::Principal::Customer { id }) => {
                self.store.mark_member_read(conv.id, id, seq, now).await?
            }
            // The business's position (what its customers see as "read") moves
            // with whoever of it reads ...
            _ => self.store.mark_read(conv.id, side, seq).await?,
        };
        // ... and in a business with a team, each person's own position too:
        // their unread count is theirs.
        if let Some(me) = self.own_reads(actor).await {
            unread = self.store.mark_team_read(conv.id, me, seq, now).await?.unread;
        }
        let payload = json!({
            "conversationId": conv.id.to_hex(),
            "readerId": actor.principal.id_hex(),
            "upToSeq": read_seq,
        });
        self.publish(Topic::Conversation(conv.id), EventKind::ConversationRead, Some(conv.id), payload, None).await;
        Ok(ReadReceipt { conversation_id: conv.id.to_hex(), up_to_seq: read_seq, unread_count: unread })
    }

    /// Marks `message` and everything before it read for the caller.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %message))]
    pub async fn mark_read(&self, actor: &Actor, message: MessageId) -> ServiceResult<ReadReceipt> {
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(message).await?.ok_or_else(not_found)?;
        let (conv, side) = self.visible_conversation(actor, msg.conversation_id).await.map_err(|_| not_found())?;
        // A customer never learns an internal note exists.
        if msg.private && side == Side::Customer {
            return Err(not_found());
        }
        super::conversations::refuse_if_blocked(&conv, side)?;
        self.read_up_to(actor, &conv, side, msg.seq).await
    }

    /// Marks everything up to `seq` (or the whole conversation) read for the caller.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn mark_read_up_to(
        &self,
        actor: &Actor,
        id: ConversationId,
        seq: Option<i64>,
    ) -> ServiceResult<ReadReceipt> {
        let (conv, side) = self.usable_conversation(actor, id).await?;
        let up_to = seq.unwrap_or(conv.last_seq).min(conv.last_seq);
        self.read_up_to(actor, &conv, side, up_to).await
    }

    /// The recipient's device got a message: `sent` → `delivered`, announced
    /// as `message_status`. Only the recipient may say so; repeating is harmless.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %message))]
    pub async fn mark_delivered(&self, actor: &Actor, id: ConversationId, message: MessageId) -> ServiceResult<bool> {
        let (conv, side) = self.usable_conversation(actor, id).await?;
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(message).await?.ok_or_else(not_found)?;
        if msg.conversation_id != conv.id || (msg.private && side == Side::Customer) {
            return Err(not_found());
        }
        if msg.sender_side == side {
            return Err(ServiceError::Invalid("only the recipient can confirm delivery".into()));
        }
        let changed = self.store.mark_delivered(message).await?;
        if changed {
            let payload =
                json!({"conversationId": conv.id.to_hex(), "messageId": message.to_hex(), "status": "delivered"});
            self.publish(Topic::Conversation(conv.id), EventKind::MessageStatus, Some(conv.id), payload, None).await;
        }
        Ok(changed)
    }

    /// The user whose own read positions `actor` keeps: a team member, or
    /// the owner of a business with a team. `None` for a customer or the
    /// owner of a business of one (the business's position is theirs).
    pub(super) async fn own_reads(&self, actor: &Actor) -> Option<omnibiz_domain::UserId> {
        let seat = actor.seat?;
        let crate::auth::Principal::User { id, .. } = actor.principal else { return None };
        if seat.role.is_some() {
            return Some(id);
        }
        let has = match self.has_team.get(&seat.business) {
            Some(has) => has,
            None => match self.store.team_members(seat.business).await {
                Ok(ms) => {
                    self.has_team.insert(seat.business, !ms.is_empty());
                    !ms.is_empty()
                }
                Err(e) => {
                    tracing::warn!(error.cause_chain = ?e, "reading the team failed; the business's read position only");
                    return None;
                }
            },
        };
        has.then_some(id)
    }
}
