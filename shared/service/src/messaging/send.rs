//! Sending a message: validation, the store's atomic append, attachments, and the publish.

use chrono::Utc;
use omnibiz_domain::views::{self, MessageView};
use omnibiz_domain::{
    Attachment, AttachmentInput, ClientMessageId, Conversation, ConversationId, CustomerId, MAX_ATTACHMENTS,
    MessageBody, MessageId, Side, UploadId, UserId,
};
use omnibiz_store::{Appended, NewMessage};
use tracing::instrument;

use super::conversations::not_found_conversation;
use super::publishing::recipient_topic;
use super::uploads::files_disabled;
use super::{Actor, Messaging, PREVIEW_CHARS, ServiceError, ServiceResult};
use crate::auth::Access;
use crate::bus::{EventKind, Topic};

/// A send request, already parsed into domain types.
#[derive(Debug, Clone)]
pub struct SendCommand {
    pub conversation_id: ConversationId,
    pub body: MessageBody,
    pub attachments: Vec<AttachmentInput>,
    pub client_message_id: Option<ClientMessageId>,
    /// An earlier message of the same conversation this one replies to.
    pub reply_to: Option<MessageId>,
    /// An internal note for the business's team (the business side only).
    pub private: bool,
}

impl SendCommand {
    /// Validates raw input (shared by REST and socket handlers).
    pub fn parse(
        conversation_id: &str,
        content: &str,
        attachments: Vec<AttachmentInput>,
        client_message_id: Option<&str>,
    ) -> ServiceResult<Self> {
        let conversation_id = conversation_id
            .parse()
            .map_err(|e: omnibiz_domain::InvalidId| ServiceError::Invalid(format!("conversationId: {e}")))?;
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(ServiceError::Invalid(format!("at most {MAX_ATTACHMENTS} attachments per message")));
        }
        for a in &attachments {
            match a {
                AttachmentInput::Link(l) => l.clone().into_attachment().validate().map_err(ServiceError::Invalid)?,
                AttachmentInput::Upload { id } => {
                    id.parse::<UploadId>().map_err(|e| ServiceError::Invalid(format!("attachment id: {e}")))?;
                }
            }
        }
        let client_message_id =
            client_message_id.map(ClientMessageId::parse).transpose().map_err(ServiceError::Invalid)?;
        Ok(Self { conversation_id, body, attachments, client_message_id, reply_to: None, private: false })
    }

    /// Makes it a reply to `raw` (a message id), when given.
    pub fn replying_to(mut self, raw: Option<&str>) -> ServiceResult<Self> {
        self.reply_to = raw
            .map(|r| r.parse::<MessageId>().map_err(|e| ServiceError::Invalid(format!("replyTo: {e}"))))
            .transpose()?;
        Ok(self)
    }

    /// Makes it an internal note when `private`.
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }
}

/// Outcome of a send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message as clients see it ([`MessageView`]), encoded to
    /// JSON once: what the bus carried, reused by responses and acks.
    pub json: Box<serde_json::value::RawValue>,
    /// False when this was a retry of an already stored `clientMessageId`.
    pub created: bool,
}

impl Messaging {
    /// Stores a message (once per `clientMessageId`) and publishes it.
    pub async fn send(&self, actor: &Actor, cmd: SendCommand) -> ServiceResult<Sent> {
        self.send_from(actor, cmd, None, None).await
    }

    /// [`Messaging::send`] from a socket: `source` keeps the gateway from
    /// echoing it back; `parties`, the conversation's owner and customer when
    /// the caller already knows them (a gateway, from the room its socket
    /// joined), spare their lookup.
    ///
    /// Two database round trips in the common case (the store's `seq` update,
    /// which also checks the sender may send here, and the insert) and one
    /// Redis round trip (the message and the notification go out together).
    /// The account behind the token and the conversation's participants
    /// come from caches; the message is encoded to JSON once.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %cmd.conversation_id))]
    pub async fn send_from(
        &self,
        actor: &Actor,
        cmd: SendCommand,
        source: Option<&str>,
        parties: Option<(UserId, CustomerId)>,
    ) -> ServiceResult<Sent> {
        // Held until the send is stored and published: a saturated store
        // refuses new sends here, before anything is written.
        let _slot = self.send_gate.admit().await?;
        let conv = cmd.conversation_id;
        let (owner, customer) = match parties {
            Some(p) => p,
            None => self.participants.get(&*self.store, conv).await?.ok_or_else(not_found_conversation)?,
        };
        // A group's members are read with it (their access, their notifications).
        let group = if Conversation::is_group_marker(conv, customer) {
            Some(self.visible_conversation(actor, conv).await?.0)
        } else {
            None
        };
        let side = match (&group, Access::between(&actor.principal, actor.seat, owner, customer)) {
            (Some(_), _) => actor.side(),
            (None, Some(Access::Participant(side))) => side,
            (None, Some(Access::Hidden)) => return Err(not_found_conversation()),
            // An agent who sees only some conversations: this one's assignee decides.
            (None, None) => self.visible_conversation(actor, conv).await?.1,
        };
        if cmd.private && side != Side::Owner {
            return Err(ServiceError::Forbidden("only the business's team writes internal notes".into()));
        }
        if cmd.attachments.iter().any(|a| matches!(a, AttachmentInput::Upload { .. })) {
            // Uploads are claimed before the append: only for a conversation
            // that takes messages now, so a refused send strands no file.
            self.sendable(actor, conv).await?;
        }
        // A reply quotes a message of this conversation that is still there.
        let quoted = match cmd.reply_to {
            Some(r) => {
                // A customer never learns a note exists; a message to the
                // customer may not quote one (its excerpt would show).
                let original = self
                    .store
                    .get_message(r)
                    .await?
                    .filter(|m| m.conversation_id == conv && (side == Side::Owner || !m.private));
                let original = original.ok_or_else(|| {
                    ServiceError::Invalid("replyTo: not a message of this conversation (or it was deleted)".into())
                })?;
                if original.private && !cmd.private {
                    return Err(ServiceError::Invalid(
                        "replyTo: an internal note can be quoted only by another internal note".into(),
                    ));
                }
                Some(original)
            }
            None => None,
        };
        let preview = cmd.body.preview(PREVIEW_CHARS);
        let cmid = cmd.client_message_id.map(|c| c.as_str().to_owned());
        let (attachments, uploads) = self.resolve_attachments(actor, conv, cmd.attachments, cmid.as_deref()).await?;
        let new = NewMessage {
            conversation_id: conv,
            sender_id: actor.principal.id_hex(),
            sender_side: side,
            sender_name: actor.name.clone(),
            content: cmd.body.into_string(),
            attachments,
            client_message_id: cmid,
            created_at: Utc::now(),
            reply_to: cmd.reply_to,
            acting_for: actor.team_role().and(actor.business()),
            team_role: actor.team_role(),
            private: cmd.private,
            system: false,
        };
        // A span only when traces are exported: none on the hot path otherwise.
        let appended = if crate::telemetry::exporting() {
            use tracing::Instrument as _;
            self.store.append_message(new).instrument(tracing::info_span!("store.append")).await?
        } else {
            self.store.append_message(new).await?
        };
        let Some(appended) = appended else {
            // Refused by the store's own check: read the conversation to say why.
            self.sendable(actor, conv).await?;
            return Err(ServiceError::Conflict("the conversation changed while sending; send again".into()));
        };
        if !uploads.is_empty() {
            // Only what the stored message refers to (a retry may name other files).
            let stored = appended.message();
            let kept: Vec<UploadId> = uploads
                .into_iter()
                .filter(|u| stored.attachments.iter().any(|a| a.id.as_deref() == Some(u.to_hex().as_str())))
                .collect();
            if let Err(e) = self.store.confirm_uploads(&kept, stored.id).await {
                // The sweeper finds the message that refers to them and confirms them later.
                tracing::warn!(error.cause_chain = ?e, "confirming uploads failed; the sweeper will");
            }
        }
        let created = matches!(appended, Appended::Created(_));
        let mut message = MessageView::from(appended.message());
        if let (Some(q), Some(r)) = (&quoted, appended.message().reply_to) {
            message.reply_to = Some(views::QuoteView::of(r, Some(q)));
        }
        // The one encoding of this message: the bus envelope, the REST
        // response, the sender's ack and `message_sent` all reuse it.
        let json = views::raw_json(&message);
        if created && cmd.private {
            // The conversation's topic only: gateways give it to the business
            // side's members (`isPrivate`), and no one is notified.
            metrics::counter!("messages_stored_total").increment(1);
            self.publish_raw(Topic::Conversation(conv), EventKind::MessageCreated, Some(conv), json.clone(), source)
                .await;
        } else if created {
            metrics::counter!("messages_stored_total").increment(1);
            let recipients = match &group {
                // Everyone in the group but the sender: the business and each other customer.
                Some(g) => {
                    let mut r: Vec<Topic> = g
                        .group
                        .iter()
                        .flat_map(|g| g.members.iter())
                        .filter(|m| actor.principal != crate::auth::Principal::Customer { id: **m })
                        .map(|m| Topic::Principal(omnibiz_domain::Party::Customer(*m)))
                        .collect();
                    if side == Side::Customer {
                        r.push(Topic::Principal(omnibiz_domain::Party::Owner(owner)));
                    }
                    r
                }
                None => vec![recipient_topic(side, owner, customer)],
            };
            self.publish_message(conv, &recipients, side, &message, json.clone(), &actor.name, &preview, source).await;
            // After the message is out: a link's card follows as a `message_updated`.
            self.spawn_link_preview(appended.message());
            if side == Side::Customer && group.is_none() {
                self.maybe_auto_assign(conv, owner);
            }
        } else {
            // A retry of a stored message. Its first publish may never have
            // happened (the process died between store and publish): publish
            // it again. Gateways deliver each stored seq once per room, so a
            // message that did go out is not delivered twice. The
            // notification is not repeated: nothing on the way dedupes it.
            self.publish_raw(Topic::Conversation(conv), EventKind::MessageCreated, Some(conv), json.clone(), source)
                .await;
        }
        Ok(Sent { json, created })
    }

    /// The conversation, if `actor` may send to it now: 404 when not theirs, 403 when blocked.
    pub(super) async fn sendable(&self, actor: &Actor, id: ConversationId) -> ServiceResult<(Conversation, Side)> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        if conv.status == omnibiz_domain::ConversationStatus::Blocked {
            return Err(ServiceError::Forbidden("this conversation is blocked".into()));
        }
        Ok((conv, side))
    }

    /// Turns a send's attachments into stored ones: links as given; uploads
    /// claimed for this send (the sender's own, to this conversation, not
    /// attached elsewhere) and described from their records.
    pub(super) async fn resolve_attachments(
        &self,
        actor: &Actor,
        conv: ConversationId,
        inputs: Vec<AttachmentInput>,
        cmid: Option<&str>,
    ) -> ServiceResult<(Vec<Attachment>, Vec<UploadId>)> {
        let mut out = Vec::with_capacity(inputs.len());
        let mut uploads = Vec::new();
        // A retried send (same clientMessageId) may claim its uploads again.
        // Built only when there is an upload to claim: most sends have none.
        let mut key: Option<String> = None;
        for input in inputs {
            match input {
                AttachmentInput::Link(link) => out.push(link.into_attachment()),
                AttachmentInput::Upload { id } => {
                    let files = self.files.as_ref().ok_or_else(files_disabled)?;
                    let uid: UploadId = id.parse().map_err(|e| ServiceError::Invalid(format!("attachment id: {e}")))?;
                    if uploads.contains(&uid) {
                        return Err(ServiceError::Invalid(format!("attachment {uid} is listed twice")));
                    }
                    let key = key.get_or_insert_with(|| match cmid {
                        Some(c) => format!("cmid:{c}"),
                        None => format!("once:{}", MessageId::new()),
                    });
                    let upload = self.store.claim_upload(uid, conv, &actor.principal.id_hex(), key).await?;
                    let upload = upload.ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "attachment {uid} is not a finished upload of yours to this conversation, \
                             or it is attached to another message"
                        ))
                    })?;
                    out.push(files.attachment(&upload));
                    uploads.push(uid);
                }
            }
        }
        Ok((out, uploads))
    }
}
