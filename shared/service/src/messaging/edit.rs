//! Editing and deleting one's own recent messages.

use chrono::Utc;
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{Conversation, Message, MessageBody, MessageId, UploadId};
use serde_json::json;
use tracing::instrument;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::bus::{EventKind, Topic};

impl Messaging {
    /// The caller's own message, within the edit window.
    pub(super) async fn own_recent_message(
        &self,
        actor: &Actor,
        id: MessageId,
        verb: &str,
    ) -> ServiceResult<(Message, Conversation)> {
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(id).await?.ok_or_else(not_found)?;
        let (conv, side) = self.visible_conversation(actor, msg.conversation_id).await.map_err(|_| not_found())?;
        if msg.private && side != omnibiz_domain::Side::Owner {
            return Err(not_found());
        }
        super::conversations::refuse_if_blocked(&conv, side)?;
        if msg.sender_id != actor.principal.id_hex() {
            return Err(ServiceError::Forbidden(format!("only its sender can {verb} a message")));
        }
        if let Some(window) = self.edit_window {
            let age = (Utc::now() - msg.created_at).to_std().unwrap_or_default();
            if age > window {
                return Err(ServiceError::Forbidden(format!(
                    "a message can only be {verb}ed within {} minutes of sending it",
                    window.as_secs().div_ceil(60)
                )));
            }
        }
        Ok((msg, conv))
    }

    /// The sender replaces their message's content; the room gets `message_updated`.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %id))]
    pub async fn edit_message(&self, actor: &Actor, id: MessageId, content: &str) -> ServiceResult<MessageView> {
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let (_, conv) = self.own_recent_message(actor, id, "edit").await?;
        let edited = self.store.edit_message(id, conv.id, body.as_str(), Utc::now()).await?;
        let edited = edited.ok_or_else(|| ServiceError::NotFound("message not found".into()))?;
        let view = MessageView::from(&edited);
        let payload = serde_json::to_value(&view).unwrap_or_default();
        self.publish(Topic::Conversation(conv.id), EventKind::MessageUpdated, Some(conv.id), payload, None).await;
        Ok(view)
    }

    /// The sender deletes their message: its content and files are removed
    /// from storage, the room gets `message_deleted`.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %id))]
    pub async fn delete_message(&self, actor: &Actor, id: MessageId) -> ServiceResult<MessageView> {
        let (msg, conv) = self.own_recent_message(actor, id, "delete").await?;
        let uploads: Vec<UploadId> = msg.attachments.iter().filter_map(|a| a.id.as_deref()?.parse().ok()).collect();
        // Handed back to the sweeper first: if this process dies midway, the
        // files are removed once no message refers to them.
        if !uploads.is_empty() {
            self.store.unconfirm_uploads(&uploads).await?;
        }
        let deleted = self.store.delete_message(id, conv.id, Utc::now()).await?;
        let deleted = deleted.ok_or_else(|| ServiceError::NotFound("message not found".into()))?;
        if let Some(files) = &self.files {
            for u in &uploads {
                let removed = match files.delete(*u).await {
                    Ok(()) => self.store.delete_upload(*u).await.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::Error::from(e)),
                };
                if let Err(e) = removed {
                    tracing::warn!(error.cause_chain = ?e, upload = %u, "removing a deleted message's file; the sweeper will");
                }
            }
        }
        let mut payload = json!({"conversationId": conv.id.to_hex(), "messageId": id.to_hex(), "seq": deleted.seq});
        if deleted.private {
            // Gateways give it to the business side only.
            payload["isPrivate"] = true.into();
        }
        self.publish(Topic::Conversation(conv.id), EventKind::MessageDeleted, Some(conv.id), payload, None).await;
        Ok(MessageView::from(&deleted))
    }
}
