//! One parse + apply per client event; each answers an ack or an [`EventError`].

use omnibiz_domain::views::raw_json;
use serde_json::value::RawValue;

use super::*;

/// A refused event: what the client is told (`message_error` / ack).
#[derive(Debug, Clone)]
pub struct EventError {
    pub error: String,
    pub code: &'static str,
    pub client_message_id: Option<String>,
    /// For `RATE_LIMITED`: milliseconds until the event would be accepted.
    pub retry_after_ms: Option<u64>,
}

impl EventError {
    pub(super) fn new(code: &'static str, error: impl Into<String>) -> Self {
        Self { error: error.into(), code, client_message_id: None, retry_after_ms: None }
    }

    pub fn ack(&self) -> Value {
        let mut v = json!({"ok": false, "error": self.error, "code": self.code});
        if let Some(ms) = self.retry_after_ms {
            v["retryAfterMs"] = json!(ms);
        }
        v
    }

    pub fn message_error(&self) -> Value {
        let mut v = self.ack();
        if let Value::Object(m) = &mut v {
            m.remove("ok");
        }
        if let Some(c) = &self.client_message_id {
            v["clientMessageId"] = json!(c);
        }
        v
    }
}

impl From<ServiceError> for EventError {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        let retry_after_ms = match &e {
            ServiceError::RateLimited(l) => Some(u64::try_from(l.retry_after.as_millis()).unwrap_or(u64::MAX).max(1)),
            ServiceError::Overloaded(o) => Some(u64::try_from(o.retry_after.as_millis()).unwrap_or(u64::MAX).max(1)),
            _ => None,
        };
        let error = match &e {
            ServiceError::Unavailable(_) => "storage is temporarily unavailable".to_owned(),
            ServiceError::Internal(inner) => {
                tracing::error!(error.cause_chain = ?inner, "store failure in a socket event");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        Self { error, code, client_message_id: None, retry_after_ms }
    }
}

impl From<omnibiz_service::limits::RateLimited> for EventError {
    fn from(l: omnibiz_service::limits::RateLimited) -> Self {
        ServiceError::from(l).into()
    }
}

/// The outcome of one incoming event.
pub struct Reply {
    /// The ack payload (`{ok:true,...}` or `{ok:false,...}`), encoded.
    pub ack: Box<RawValue>,
    /// Also emit `message_error` with this payload.
    pub message_error: Option<Value>,
}

impl Reply {
    fn ok(v: Value) -> Self {
        let mut ack = json!({"ok": true});
        if let (Value::Object(a), Value::Object(extra)) = (&mut ack, v) {
            a.extend(extra);
        }
        Self { ack: raw_json(&ack), message_error: None }
    }

    /// `{"ok":true,"message":…}` around a message already encoded.
    fn sent(message: &RawValue) -> Self {
        let text = format!(r#"{{"ok":true,"message":{}}}"#, message.get());
        // Valid JSON by construction; `null` keeps it total.
        let ack = RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self { ack, message_error: None }
    }

    fn failed(e: &EventError, tell: bool) -> Self {
        Self { ack: raw_json(&e.ack()), message_error: tell.then(|| e.message_error()) }
    }
}

/// The rate-limit bucket of each client event (`None`: not limited here).
fn action_of(event: &str) -> Option<Action> {
    Some(match event {
        "join_conversation" | "leave_conversation" => Action::Join,
        "send_message" => Action::Send,
        "typing_start" | "typing_stop" => Action::Typing,
        "mark_read" | "message_delivered" => Action::Receipt,
        "edit_message" | "delete_message" | "refresh_token" | "add_reaction" | "remove_reaction" => Action::Write,
        "archive_conversation" | "unarchive_conversation" | "assign_conversation" => Action::Write,
        _ => return None,
    })
}

// The index is sized for hundreds of thousands of idle sockets: small vectors
// instead of per-socket hash sets, recovery state boxed only while in use.
impl Hub {
    /// Handles one incoming event. Unknown events are ignored (`None`).
    /// With traces on, each event is a span (the root of a socket send's trace).
    pub async fn handle(&self, id: ConnId, event: &str, data: Value) -> Option<Reply> {
        // A static label: no allocation per event, and clients cannot mint label values.
        let label = EVENTS.iter().copied().find(|e| *e == event).unwrap_or("unknown");
        metrics::counter!("gateway_events_in_total", "event" => label).increment(1);
        if omnibiz_service::telemetry::exporting() {
            use tracing::Instrument as _;
            let span = tracing::info_span!("socket.event", event = label);
            return self.handle_event(id, event, label, data).instrument(span).await;
        }
        self.handle_event(id, event, label, data).await
    }

    async fn handle_event(&self, id: ConnId, event: &str, label: &'static str, data: Value) -> Option<Reply> {
        let actor = self.actor_of(id)?;
        if let Some(action) = action_of(event)
            && let Err(limited) = self.messaging.check_rate(actor.principal.party(), action)
        {
            metrics::counter!("gateway_rate_limited_total", "event" => label).increment(1);
            let mut e = EventError::from(limited);
            if event == "send_message" {
                e.client_message_id = events::client_message_id(&data);
            }
            // Typing is best-effort and frequent: the ack says it, no `message_error`.
            return Some(Reply::failed(&e, !event.starts_with("typing")));
        }
        let reply = match event {
            "join_conversation" => match self.join(id, &actor, &data).await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, true),
            },
            "leave_conversation" => match events::conversation(&data) {
                Ok(c) => {
                    self.leave(id, &actor, c).await;
                    Reply::ok(json!({"conversationId": c.to_hex()}))
                }
                Err(e) => Reply::failed(&e.into(), true),
            },
            "send_message" => match self.send(id, &actor, data).await {
                Ok(message) => {
                    self.emit_to(id, &OutEvent::raw("message_sent", &message));
                    Reply::sent(&message)
                }
                Err(e) => Reply::failed(&e, true),
            },
            "typing_start" | "typing_stop" => match self.typing(id, &actor, &data, event == "typing_start").await {
                Ok(c) => Reply::ok(json!({"conversationId": c.to_hex()})),
                Err(e) => Reply::failed(&e, false),
            },
            "mark_read" => match self.mark_read(&actor, &data).await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, true),
            },
            "message_delivered" => match self.delivered(&actor, &data).await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, true),
            },
            "edit_message" | "delete_message" => match self.change(&actor, &data, event == "edit_message").await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, true),
            },
            "add_reaction" | "remove_reaction" => match self.reaction(&actor, &data, event == "add_reaction").await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, true),
            },
            "archive_conversation" | "unarchive_conversation" => {
                let archive = event == "archive_conversation";
                match events::conversation(&data) {
                    Ok(c) => match self.messaging.set_archived(&actor, c, archive).await {
                        Ok(v) => Reply::ok(json!({"conversation": v})),
                        Err(e) => Reply::failed(&e.into(), true),
                    },
                    Err(e) => Reply::failed(&e.into(), true),
                }
            }
            "assign_conversation" => match events::assign(&data) {
                Ok((c, a)) => match self.messaging.assign(&actor, c, a).await {
                    Ok(v) => Reply::ok(json!({"conversation": v})),
                    Err(e) => Reply::failed(&e.into(), true),
                },
                Err(e) => Reply::failed(&e.into(), true),
            },
            "refresh_token" => match self.refresh(id, &actor, &data).await {
                Ok(v) => Reply::ok(v),
                Err(e) => Reply::failed(&e, false),
            },
            _ => return None,
        };
        Some(reply)
    }

    pub(super) async fn join(&self, id: ConnId, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let (conv_id, last_seq) = events::join(data)?;
        let (conv, _) = self.messaging.usable_conversation(actor, conv_id).await?;
        // A new room starts after the newest *stored* message, not after
        // `lastSeq`: a seq taken by a send whose insert is still in flight
        // must still go out live when it lands.
        let floor = if self.config.relay_only || self.lock().rooms.contains_key(&conv_id) {
            conv.last_seq
        } else {
            // The newest message actually stored (see `newest_stored_seq`).
            self.messaging.newest_stored_seq(conv_id, conv.last_seq).await?
        };
        let already = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.get_mut(&id) else { return Err(EventError::new("CLOSED", "connection closed")) };
            let already = conn.joined.contains(&conv_id);
            if !already {
                if conn.joined.len() >= self.config.max_rooms_per_socket {
                    metrics::counter!("gateway_rate_limited_total", "event" => "join_conversation").increment(1);
                    let max = self.config.max_rooms_per_socket;
                    return Err(EventError::new(
                        "TOO_MANY_ROOMS",
                        format!("at most {max} conversations joined per connection; leave one first"),
                    ));
                }
                conn.joined.push(conv_id);
            }
            let recovery =
                last_seq.map(|s| Box::new(Recovery { delivered: Delivered::after(s), held: Some(Vec::new()) }));
            let parties = (conv.business_owner_id, conv.customer_id);
            let room = ix.rooms.entry(conv_id).or_insert_with(|| Room::new(floor, parties));
            match member_mut(room, id) {
                Some(m) => m.recovery = recovery,
                None => room.members.push((id, Member { recovery })),
            }
            already
        };
        if !already && let Err(e) = self.subs.acquire(&Topic::Conversation(conv_id)).await {
            self.forget_membership(id, conv_id);
            return Err(unavailable(e));
        }
        metrics::counter!("gateway_joins_total").increment(1);
        let mut replayed = 0usize;
        if let Some(after) = last_seq {
            replayed = self.replay(id, actor, conv_id, after).await?;
        }
        if !already {
            self.publish_presence(actor, conv_id, true).await;
        }
        let others = match actor.side() {
            Side::Owner => format!("customer:{}", conv.customer_id),
            Side::Customer => format!("user:{}", conv.business_owner_id),
        };
        let online = self.presence.online(&[others]).await.first().copied().unwrap_or(false);
        Ok(
            json!({"conversationId": conv_id.to_hex(), "lastSeq": conv.last_seq, "replayed": replayed, "otherOnline": online}),
        )
    }

    pub(super) fn forget_membership(&self, id: ConnId, conv: ConversationId) {
        let mut ix = self.lock();
        if let Some(c) = ix.conns.get_mut(&id) {
            c.joined.retain(|j| *j != conv);
        }
        leave_room(&mut ix.rooms, conv, id);
    }

    pub(super) async fn leave(&self, id: ConnId, actor: &Actor, conv: ConversationId) {
        let (was_member, typing) = {
            let mut ix = self.lock();
            let was = ix.conns.get_mut(&id).is_some_and(|c| {
                let before = c.joined.len();
                c.joined.retain(|j| *j != conv);
                c.joined.len() != before
            });
            leave_room(&mut ix.rooms, conv, id);
            let typing = ix.typing.remove(&(id, conv));
            (was, typing)
        };
        if let Some(t) = typing {
            t.abort();
            self.publish_typing(actor, conv, false).await;
        }
        if was_member {
            self.subs.release(&Topic::Conversation(conv)).await;
            self.publish_presence(actor, conv, false).await;
        }
    }

    pub(super) async fn send(&self, id: ConnId, actor: &Actor, data: Value) -> Result<Box<RawValue>, EventError> {
        let cmid = events::client_message_id(&data);
        let with_id = |mut e: EventError| {
            e.client_message_id.clone_from(&cmid);
            e
        };
        let p = events::send(data).map_err(|e| with_id(e.into()))?;
        let content = match &p.quick_reply {
            Some(key) if p.content.trim().is_empty() => {
                self.messaging.quick_reply_content(actor, key).await.map_err(|e| with_id(e.into()))?
            }
            _ => p.content,
        };
        let cmd = SendCommand::parse(&p.conversation_id, &content, p.attachments, p.client_message_id.as_deref())
            .and_then(|c| c.replying_to(p.reply_to.as_deref()))
            .map(|c| c.private(p.is_private))
            .map_err(|e| with_id(e.into()))?;
        let source = format!("{}/{id}", self.messaging.origin());
        if self.config.relay_only {
            return self.relay_without_storing(id, actor, &source, cmd).await.map_err(with_id);
        }
        let parties = self.lock().rooms.get(&cmd.conversation_id).map(|r| r.parties);
        let sent = self.messaging.send_from(actor, cmd, Some(&source), parties).await.map_err(|e| with_id(e.into()))?;
        Ok(sent.json)
    }

    /// The relay-only benchmark path: same validation and fan-out, no store.
    /// Access is checked by membership (the join already checked the store).
    pub(super) async fn relay_without_storing(
        &self,
        id: ConnId,
        actor: &Actor,
        source: &str,
        cmd: SendCommand,
    ) -> Result<Box<RawValue>, EventError> {
        let conv = cmd.conversation_id;
        if !self.lock().conns.get(&id).is_some_and(|c| c.joined.contains(&conv)) {
            return Err(EventError::new("NOT_FOUND", "join the conversation first (relay-only mode)"));
        }
        let seq = {
            let mut m = self.relay_seq.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(conv).or_insert(0);
            *n += 1;
            *n
        };
        let message = json!({
            "id": omnibiz_domain::MessageId::new().to_hex(),
            "conversationId": conv.to_hex(),
            "senderId": actor.principal.id_hex(),
            "senderName": actor.name,
            "senderRole": actor.side().role_name(),
            "content": cmd.body.as_str(),
            "timestamp": omnibiz_domain::views::iso(chrono::Utc::now()),
            "status": "sent",
            "seq": seq,
            "attachments": cmd.attachments,
            "clientMessageId": cmd.client_message_id.as_ref().map(|c| c.as_str()),
        });
        let message = raw_json(&message);
        let topic = Topic::Conversation(conv);
        self.messaging.publish_raw(topic, EventKind::MessageCreated, Some(conv), message.clone(), Some(source)).await;
        Ok(message)
    }

    pub(super) async fn typing(
        &self,
        id: ConnId,
        actor: &Actor,
        data: &Value,
        start: bool,
    ) -> Result<ConversationId, EventError> {
        let conv = events::conversation(data)?;
        let joined = self.lock().conns.get(&id).is_some_and(|c| c.joined.contains(&conv));
        if !joined {
            self.messaging.usable_conversation(actor, conv).await?;
        }
        if start {
            self.publish_typing(actor, conv, true).await;
            self.arm_typing_expiry(id, actor.clone(), conv);
        } else {
            let timer = self.lock().typing.remove(&(id, conv));
            if let Some(t) = timer {
                t.abort();
            }
            self.publish_typing(actor, conv, false).await;
        }
        Ok(conv)
    }

    /// A typing state with no stop expires server-side and emits the stop.
    pub(super) fn arm_typing_expiry(&self, id: ConnId, actor: Actor, conv: ConversationId) {
        let me = self.me.clone();
        let expiry = self.config.typing_expiry;
        let task = tokio::spawn(async move {
            tokio::time::sleep(expiry).await;
            let Some(hub) = me.upgrade() else { return };
            hub.lock().typing.remove(&(id, conv));
            metrics::counter!("gateway_typing_expired_total").increment(1);
            hub.publish_typing(&actor, conv, false).await;
        });
        if let Some(old) = self.lock().typing.insert((id, conv), task) {
            old.abort();
        }
    }

    pub(super) async fn publish_typing(&self, actor: &Actor, conv: ConversationId, start: bool) {
        let (kind, payload) = if start {
            (
                EventKind::TypingStart,
                json!({"conversationId": conv.to_hex(), "userId": actor.principal.id_hex(), "userName": actor.name}),
            )
        } else {
            (EventKind::TypingStop, json!({"conversationId": conv.to_hex(), "userId": actor.principal.id_hex()}))
        };
        self.messaging.publish(Topic::Conversation(conv), kind, Some(conv), payload, None).await;
    }

    pub(super) async fn publish_presence(&self, actor: &Actor, conv: ConversationId, online: bool) {
        let payload = json!({"userId": actor.principal.id_hex(), "online": online, "conversationId": conv.to_hex()});
        self.messaging.publish(Topic::Conversation(conv), EventKind::Presence, Some(conv), payload, None).await;
    }

    pub(super) async fn mark_read(&self, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let receipt = match events::mark_read(data)? {
            ReadTarget::Message(m) => self.messaging.mark_read(actor, m).await?,
            ReadTarget::Seq(c, seq) => self.messaging.mark_read_up_to(actor, c, seq).await?,
        };
        Ok(serde_json::to_value(receipt).unwrap_or_default())
    }

    /// `edit_message` / `delete_message`: the room hears `message_updated` / `message_deleted`.
    pub(super) async fn change(&self, actor: &Actor, data: &Value, edit: bool) -> Result<Value, EventError> {
        let (id, content) = events::message_edit(data)?;
        let message = if edit {
            let content = content.ok_or_else(|| ServiceError::Invalid("content is required".into()))?;
            self.messaging.edit_message(actor, id, &content).await?
        } else {
            self.messaging.delete_message(actor, id).await?
        };
        Ok(json!({"message": message}))
    }

    /// `add_reaction` / `remove_reaction {messageId, emoji}`: the room hears `reaction_added` / `reaction_removed`.
    pub(super) async fn reaction(&self, actor: &Actor, data: &Value, add: bool) -> Result<Value, EventError> {
        let (id, emoji) = events::reaction(data)?;
        let message = self.messaging.react(actor, id, &emoji, add).await?;
        Ok(json!({"message": message}))
    }

    pub(super) async fn delivered(&self, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let (conv, msg) = events::delivered(data)?;
        let changed = self.messaging.mark_delivered(actor, conv, msg).await?;
        Ok(json!({"conversationId": conv.to_hex(), "messageId": msg.to_hex(), "changed": changed}))
    }
}
