//! Publishing stored changes on the bus (after the store, never instead).

use omnibiz_domain::views::{self, MessageView};
use omnibiz_domain::{Conversation, ConversationId, CustomerId, Message, Side, UserId};
use omnibiz_store::Party;

use super::{Messaging, PREVIEW_CHARS};
use crate::bus::{Envelope, EventKind, Topic};

/// The personal topic of the participant who did not send.
pub(super) fn recipient_topic(sender: Side, owner: UserId, customer: CustomerId) -> Topic {
    Topic::Principal(match sender {
        Side::Owner => Party::Customer(customer),
        Side::Customer => Party::Owner(owner),
    })
}

/// The `notification` event's payload.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification<'a> {
    conversation_id: String,
    from: &'a str,
    from_id: &'a str,
    sender_role: &'a str,
    preview: &'a str,
    message_id: &'a str,
    seq: i64,
}

impl Messaging {
    /// Publishes after a stored change; failures are logged and counted only.
    /// `source` names the connection the change came from (see [`Envelope::source`]).
    pub async fn publish(
        &self,
        topic: Topic,
        kind: EventKind,
        conv: Option<ConversationId>,
        payload: serde_json::Value,
        source: Option<&str>,
    ) {
        self.publish_envelope(topic, Envelope::new(kind, conv, payload), source).await;
    }

    /// [`Messaging::publish`] with a payload already encoded.
    pub async fn publish_raw(
        &self,
        topic: Topic,
        kind: EventKind,
        conv: Option<ConversationId>,
        payload: Box<serde_json::value::RawValue>,
        source: Option<&str>,
    ) {
        self.publish_envelope(topic, Envelope::from_raw(kind, conv, payload), source).await;
    }

    pub(super) async fn publish_envelope(&self, topic: Topic, mut env: Envelope, source: Option<&str>) {
        env.origin = Some(self.origin.to_string());
        env.source = source.map(str::to_owned);
        let published = if crate::telemetry::exporting() {
            use tracing::Instrument as _;
            let span = tracing::info_span!("bus.publish", channel = %topic.channel(), kind = ?env.kind);
            // The gateways' delivery spans continue this one.
            env.traceparent = span.in_scope(crate::telemetry::traceparent);
            self.bus.publish(&topic, &env).instrument(span).await
        } else {
            self.bus.publish(&topic, &env).await
        };
        if let Err(e) = published {
            metrics::counter!("bus_publish_errors_total").increment(1);
            tracing::warn!(error.cause_chain = ?e, channel = %topic.channel(), "publish failed; clients will recover by seq");
        }
    }

    /// Publishes a newly stored message to its conversation and a
    /// notification to the recipient's personal topic, concurrently: on
    /// Redis the two commands share one round trip (fred pipelines them).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn publish_message(
        &self,
        conv: ConversationId,
        recipients: &[Topic],
        side: Side,
        message: &MessageView,
        json: Box<serde_json::value::RawValue>,
        from: &str,
        preview: &str,
        source: Option<&str>,
    ) {
        let note = Notification {
            conversation_id: conv.to_hex(),
            from,
            from_id: &message.sender_id,
            sender_role: side.role_name(),
            preview,
            message_id: &message.id,
            seq: message.seq,
        };
        let note = views::raw_json(&note);
        let message = self.publish_raw(Topic::Conversation(conv), EventKind::MessageCreated, Some(conv), json, source);
        if let [one] = recipients {
            // A direct conversation: the two commands share one round trip, nothing allocated for a list.
            tokio::join!(message, self.publish_raw(one.clone(), EventKind::Notification, Some(conv), note, None));
        } else {
            // A group: the business and every other customer.
            let notes = recipients
                .iter()
                .map(|r| self.publish_raw(r.clone(), EventKind::Notification, Some(conv), note.clone(), None));
            tokio::join!(message, futures_util::future::join_all(notes));
        }
    }

    /// Publishes a message the Node service stored and an adopter just
    /// numbered (see `store::mongo::legacy`), exactly as if we had stored it.
    pub async fn publish_adopted(&self, conv: &Conversation, message: &Message) {
        let view = MessageView::from(message);
        let json = views::raw_json(&view);
        let preview = omnibiz_domain::preview(&message.content, PREVIEW_CHARS);
        let side = message.sender_side;
        let recipient = recipient_topic(side, conv.business_owner_id, conv.customer_id);
        self.publish_message(conv.id, &[recipient], side, &view, json, &message.sender_name, &preview, None).await;
    }
}
