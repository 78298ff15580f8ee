//! The gateway core: connections, local room index, event handling and
//! fan-out of bus events to local sockets. Protocol-agnostic (see
//! [`crate::transport`]).
//!
//! Locking: one `std::sync::Mutex` over the index. It is never held across an
//! `.await`; sends happen under it because [`Connection::send`] never waits,
//! which keeps per-socket order equal to bus order.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omnibiz_shared::auth::{AuthError, Principal, Verifier};

use omnibiz_shared::bus::{Envelope, EventKind, PayloadMeta, Published, Topic};
use omnibiz_shared::domain::{ConversationId, ObjectId, Side};
use omnibiz_shared::presence::Presence;
use omnibiz_shared::service::{Actor, Messaging, SendCommand, ServiceError};
use omnibiz_shared::store::StoreError;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::GatewayConfig;
use crate::dedupe::Delivered;
use crate::events::{self, ReadTarget};
use crate::subscriptions::Subscriptions;
use crate::transport::{CloseReason, ConnId, Connection, OutEvent, SendError};

/// The client → server events the hub handles.
pub const EVENTS: &[&str] = &[
    "join_conversation",
    "leave_conversation",
    "send_message",
    "typing_start",
    "typing_stop",
    "mark_read",
    "message_delivered",
];

/// A refused event: what the client is told (`message_error` / ack).
#[derive(Debug, Clone)]
pub struct EventError {
    pub error: String,
    pub code: &'static str,
    pub client_message_id: Option<String>,
}

impl EventError {
    fn new(code: &'static str, error: impl Into<String>) -> Self {
        Self { error: error.into(), code, client_message_id: None }
    }

    pub fn ack(&self) -> Value {
        json!({"ok": false, "error": self.error, "code": self.code})
    }

    pub fn message_error(&self) -> Value {
        let mut v = json!({"error": self.error, "code": self.code});
        if let Some(c) = &self.client_message_id {
            v["clientMessageId"] = json!(c);
        }
        v
    }
}

impl From<ServiceError> for EventError {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        let error = match &e {
            ServiceError::Store(StoreError::Unavailable(_)) => "storage is temporarily unavailable".to_owned(),
            ServiceError::Store(inner) => {
                tracing::error!(error.cause_chain = ?inner, "store failure in a socket event");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        Self { error, code, client_message_id: None }
    }
}

/// The outcome of one incoming event.
pub struct Reply {
    /// The ack payload (`{ok:true,...}` or `{ok:false,...}`).
    pub ack: Value,
    /// Also emit `message_error` with this payload.
    pub message_error: Option<Value>,
}

impl Reply {
    fn ok(v: Value) -> Self {
        let mut ack = json!({"ok": true});
        if let (Value::Object(a), Value::Object(extra)) = (&mut ack, v) {
            a.extend(extra);
        }
        Self { ack, message_error: None }
    }

    fn failed(e: &EventError, tell: bool) -> Self {
        Self { ack: e.ack(), message_error: tell.then(|| e.message_error()) }
    }
}

// The index is sized for hundreds of thousands of idle sockets: small vectors
// instead of per-socket hash sets, recovery state boxed only while in use.
struct Conn {
    handle: Arc<dyn Connection>,
    /// Shared, so handling an event does not copy the account.
    actor: Arc<Actor>,
    /// Conversations joined (a handful at most).
    joined: Vec<ConversationId>,
}

/// Recovery bookkeeping of a member that rejoined with `lastSeq`.
struct Recovery {
    /// What it already has.
    delivered: Delivered,
    /// Live events held back while history is being replayed.
    held: Option<Vec<Arc<Envelope>>>,
}

#[derive(Default)]
struct Member {
    recovery: Option<Box<Recovery>>,
}

/// A principal's local connections.
#[derive(Default)]
struct Personal {
    conns: Vec<ConnId>,
    /// Its topic is subscribed and presence claimed.
    live: bool,
}

#[derive(Default)]
struct Index {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<ConversationId, Room>,
    /// Personal room (`user:<id>`) → local connections.
    personal: HashMap<String, Personal>,
    typing: HashMap<(ConnId, ConversationId), JoinHandle<()>>,
}

/// A conversation's local members, and which of its messages this gateway
/// has dispatched (so a message fetched by a resync and also arriving live
/// is delivered once).
struct Room {
    members: Vec<(ConnId, Member)>,
    seen: Delivered,
}

impl Room {
    fn new(last_seq: i64) -> Self {
        Self { members: Vec::new(), seen: Delivered::after(last_seq) }
    }
}

fn member_mut(room: &mut Room, id: ConnId) -> Option<&mut Member> {
    room.members.iter_mut().find(|(c, _)| *c == id).map(|(_, m)| m)
}

/// Removes `id` from a room, and the room once it is empty.
fn leave_room(rooms: &mut HashMap<ConversationId, Room>, conv: ConversationId, id: ConnId) {
    if let Some(room) = rooms.get_mut(&conv) {
        room.members.retain(|(c, _)| *c != id);
        if room.members.is_empty() {
            rooms.remove(&conv);
        }
    }
}

pub struct Hub {
    /// Handle on itself, for timers that outlive a call.
    me: std::sync::Weak<Hub>,
    messaging: Messaging,
    verifier: Arc<Verifier>,
    presence: Arc<dyn Presence>,
    subs: Subscriptions,
    config: GatewayConfig,
    index: Mutex<Index>,
    next_id: AtomicU64,
    live: AtomicUsize,
    /// Set on shutdown: new connections are refused while existing ones are moved away.
    draining: std::sync::atomic::AtomicBool,
    send_limit: DefaultKeyedRateLimiter<String>,
    /// Per-conversation counters of the relay-only benchmark mode.
    relay_seq: Mutex<HashMap<ConversationId, i64>>,
    typing_limit: DefaultKeyedRateLimiter<String>,
}

fn quota(per_sec: u32) -> Quota {
    let n = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)))
}

fn unavailable(e: impl std::fmt::Display) -> EventError {
    EventError::new("SERVICE_UNAVAILABLE", format!("realtime bus unavailable: {e}"))
}

impl Hub {
    pub fn new(
        messaging: Messaging,
        verifier: Arc<Verifier>,
        presence: Arc<dyn Presence>,
        config: GatewayConfig,
    ) -> Arc<Self> {
        let subs = Subscriptions::new(Arc::clone(messaging.bus()));
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            send_limit: RateLimiter::keyed(quota(config.send_per_sec)),
            typing_limit: RateLimiter::keyed(quota(config.typing_per_sec)),
            messaging,
            verifier,
            presence,
            subs,
            config,
            index: Mutex::new(Index::default()),
            next_id: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            relay_seq: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Checks a connection attempt: capacity, token, account. The error text
    /// is what the client's `connect_error` shows.
    pub async fn admit(&self, token: Option<&str>) -> Result<Actor, String> {
        if self.draining.load(Ordering::Acquire) {
            metrics::counter!("gateway_connections_refused_total", "reason" => "draining").increment(1);
            return Err("gateway shutting down, reconnect".into());
        }
        if self.connections() >= self.config.max_connections {
            metrics::counter!("gateway_connections_refused_total", "reason" => "capacity").increment(1);
            return Err("gateway at capacity, retry another".into());
        }
        let principal = self.verifier.verify(token.unwrap_or("")).map_err(|e: AuthError| {
            metrics::counter!("gateway_connections_refused_total", "reason" => "auth").increment(1);
            e.to_string()
        })?;
        self.messaging.actor(principal).await.map_err(|e| match e {
            ServiceError::Unauthorized(m) => m,
            other => EventError::from(other).error,
        })
    }

    /// Registers an admitted connection in the index, synchronously, so
    /// events that arrive right after the handshake find it. Then call
    /// [`Hub::connected`] to join the personal room's topic and count for presence.
    pub fn register(&self, handle: Arc<dyn Connection>, actor: Actor) -> ConnId {
        // Starts at 1; 2^64 registrations never wrap in practice.
        let id = ConnId::new(self.next_id.fetch_add(1, Ordering::Relaxed)).unwrap_or(ConnId::MIN);
        let room = actor.principal.room();
        {
            let mut ix = self.lock();
            ix.conns.insert(id, Conn { handle, actor: Arc::new(actor), joined: Vec::new() });
            ix.personal.entry(room).or_default().conns.push(id);
        }
        let n = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("gateway_connections").set(n as f64);
        id
    }

    /// Second half of connecting: the first local connection of a principal
    /// subscribes its personal topic and marks it online.
    pub async fn connected(&self, id: ConnId) {
        let room = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.get(&id) else { return };
            let room = conn.actor.principal.room();
            let Some(p) = ix.personal.get_mut(&room) else { return };
            if std::mem::replace(&mut p.live, true) {
                return; // another local connection of this principal did it
            }
            room
        };
        if let Err(e) = self.subs.acquire(&Topic::Principal(room.clone())).await {
            tracing::warn!(error.cause_chain = ?e, "personal room subscription failed; notifications may be missed");
        }
        self.presence.set_local(&room, true).await;
    }

    /// Forgets a connection: leaves its rooms, stops its typing, updates presence.
    pub async fn disconnected(&self, id: ConnId) {
        let (conn, rooms_left, last_personal, typing) = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.remove(&id) else { return };
            // Every membership holds one subscription reference, released below.
            let left = conn.joined.clone();
            for c in &left {
                leave_room(&mut ix.rooms, *c, id);
            }
            let personal = conn.actor.principal.room();
            let last = match ix.personal.get_mut(&personal) {
                Some(p) => {
                    p.conns.retain(|c| *c != id);
                    p.conns.is_empty()
                }
                None => false,
            };
            let last = last && ix.personal.remove(&personal).is_some_and(|p| p.live);
            let typing: Vec<ConversationId> =
                conn.joined.iter().copied().filter(|c| ix.typing.contains_key(&(id, *c))).collect();
            for c in &typing {
                if let Some(t) = ix.typing.remove(&(id, *c)) {
                    t.abort();
                }
            }
            (conn, left, last, typing)
        };
        let n = self.live.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        metrics::gauge!("gateway_connections").set(n as f64);
        for c in typing {
            self.publish_typing(&conn.actor, c, false).await;
        }
        for c in rooms_left {
            self.subs.release(&Topic::Conversation(c)).await;
        }
        if last_personal {
            let room = conn.actor.principal.room();
            self.subs.release(&Topic::Principal(room.clone())).await;
            self.presence.set_local(&room, false).await;
            for c in &conn.joined {
                self.publish_presence(&conn.actor, *c, false).await;
            }
        }
    }

    /// Every personal room held here (for the presence heartbeat).
    pub fn personal_rooms(&self) -> Vec<String> {
        self.lock().personal.keys().cloned().collect()
    }

    /// Shutdown: refuses new connections, then closes the existing ones spread
    /// evenly over `window`, so the remaining gateways are not hit by a
    /// reconnect storm. Closing the transport makes clients reconnect (to
    /// another gateway behind the load balancer) and rejoin with `lastSeq`.
    /// Returns when every connection is gone or `window` plus 2 s has passed.
    pub async fn drain(&self, window: Duration) {
        self.draining.store(true, Ordering::Release);
        metrics::gauge!("gateway_draining").set(1.0);
        let handles: Vec<Arc<dyn Connection>> = self.lock().conns.values().map(|c| Arc::clone(&c.handle)).collect();
        let n = handles.len().max(1) as u32;
        tracing::info!(connections = handles.len(), ?window, "draining connections");
        let start = tokio::time::Instant::now();
        for (i, h) in handles.into_iter().enumerate() {
            tokio::time::sleep_until(start + window * i as u32 / n).await;
            h.close(CloseReason::ServerShutdown);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn actor_of(&self, id: ConnId) -> Option<Arc<Actor>> {
        self.lock().conns.get(&id).map(|c| Arc::clone(&c.actor))
    }

    /// The local connection an envelope came from, if it came from this process.
    fn local_source(&self, env: &Envelope) -> Option<ConnId> {
        let rest = env.source.as_deref()?.strip_prefix(self.messaging.origin())?;
        rest.strip_prefix('/')?.parse().ok()
    }

    /// Handles one incoming event. Unknown events are ignored (`None`).
    pub async fn handle(&self, id: ConnId, event: &str, data: Value) -> Option<Reply> {
        // A static label: no allocation per event, and clients cannot mint label values.
        let label = EVENTS.iter().copied().find(|e| *e == event).unwrap_or("unknown");
        metrics::counter!("gateway_events_in_total", "event" => label).increment(1);
        let actor = self.actor_of(id)?;
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
                    self.emit_to(id, &OutEvent::new("message_sent", message.clone()));
                    Reply::ok(json!({"message": message}))
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
            _ => return None,
        };
        Some(reply)
    }

    async fn join(&self, id: ConnId, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let (conv_id, last_seq) = events::join(data)?;
        let (conv, _) = self.messaging.visible_conversation(actor, conv_id).await?;
        let already = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.get_mut(&id) else { return Err(EventError::new("CLOSED", "connection closed")) };
            let already = conn.joined.contains(&conv_id);
            if !already {
                conn.joined.push(conv_id);
            }
            let recovery =
                last_seq.map(|s| Box::new(Recovery { delivered: Delivered::after(s), held: Some(Vec::new()) }));
            let room = ix.rooms.entry(conv_id).or_insert_with(|| Room::new(conv.last_seq));
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

    /// Sends every stored message after `after`, then releases held live events, in order.
    async fn replay(
        &self,
        id: ConnId,
        actor: &Actor,
        conv: ConversationId,
        mut after: i64,
    ) -> Result<usize, EventError> {
        let page = self.config.replay_page;
        let mut count = 0;
        loop {
            let msgs = match self.messaging.messages_after(actor, conv, after, page).await {
                Ok(m) => m,
                Err(e) => {
                    self.forget_membership(id, conv);
                    self.subs.release(&Topic::Conversation(conv)).await;
                    return Err(e.into());
                }
            };
            let done = msgs.len() < page;
            let handle = {
                let mut guard = self.lock();
                let Index { conns, rooms, .. } = &mut *guard;
                let Some(conn) = conns.get(&id) else { return Ok(count) };
                let handle = Arc::clone(&conn.handle);
                let Some(member) = rooms.get_mut(&conv).and_then(|r| member_mut(r, id)) else { return Ok(count) };
                let mut failed = false;
                for m in &msgs {
                    after = after.max(m.seq);
                    if member.recovery.as_mut().is_none_or(|r| r.delivered.accept(m.seq)) {
                        let data = serde_json::to_value(m).unwrap_or_default();
                        failed |= handle.send(&OutEvent::new("message_received", data)).is_err();
                        count += 1;
                    }
                }
                if done && !failed {
                    // Release what arrived live during the replay, skipping what history covered.
                    let held = member.recovery.as_mut().and_then(|r| r.held.take()).unwrap_or_default();
                    for env in held {
                        let from = self.local_source(&env);
                        let meta = env.meta();
                        let sender = sender_of(&meta);
                        if let Some(name) = self.message_event_for(meta.seq, from, sender, id, conn, member) {
                            failed |= handle.send(&OutEvent::raw(name, &env.payload)).is_err();
                        }
                    }
                }
                if failed {
                    drop(guard);
                    metrics::counter!("gateway_slow_clients_dropped_total").increment(1);
                    handle.close(CloseReason::SlowClient);
                    return Ok(count);
                }
                handle
            };
            if done {
                return Ok(count);
            }
            // Let the client read before the next page (the outbox is bounded).
            let waited = tokio::time::Instant::now();
            while handle.queued() > self.config.max_buffer / 2 {
                if waited.elapsed() > Duration::from_secs(10) {
                    metrics::counter!("gateway_slow_clients_dropped_total").increment(1);
                    handle.close(CloseReason::SlowClient);
                    return Ok(count);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    fn forget_membership(&self, id: ConnId, conv: ConversationId) {
        let mut ix = self.lock();
        if let Some(c) = ix.conns.get_mut(&id) {
            c.joined.retain(|j| *j != conv);
        }
        leave_room(&mut ix.rooms, conv, id);
    }

    async fn leave(&self, id: ConnId, actor: &Actor, conv: ConversationId) {
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

    async fn send(&self, id: ConnId, actor: &Actor, data: Value) -> Result<Value, EventError> {
        let cmid = events::client_message_id(&data);
        let with_id = |mut e: EventError| {
            e.client_message_id.clone_from(&cmid);
            e
        };
        if self.send_limit.check_key(&actor.principal.room()).is_err() {
            metrics::counter!("gateway_rate_limited_total", "event" => "send_message").increment(1);
            return Err(with_id(EventError::new("RATE_LIMITED", "sending too fast; slow down")));
        }
        let p = events::send(data).map_err(|e| with_id(e.into()))?;
        let cmd = SendCommand::parse(&p.conversation_id, &p.content, p.attachments, p.client_message_id.as_deref())
            .map_err(|e| with_id(e.into()))?;
        let source = format!("{}/{id}", self.messaging.origin());
        if self.config.relay_only {
            return self.relay_without_storing(id, actor, &source, cmd).await.map_err(with_id);
        }
        let sent = self.messaging.send_from(actor, cmd, Some(&source)).await.map_err(|e| with_id(e.into()))?;
        Ok(serde_json::to_value(&sent.message).unwrap_or_default())
    }

    /// The relay-only benchmark path: same validation and fan-out, no store.
    /// Access is checked by membership (the join already checked the store).
    async fn relay_without_storing(
        &self,
        id: ConnId,
        actor: &Actor,
        source: &str,
        cmd: SendCommand,
    ) -> Result<Value, EventError> {
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
            "id": omnibiz_shared::domain::MessageId::new().to_hex(),
            "conversationId": conv.to_hex(),
            "senderId": actor.principal.id_hex(),
            "senderName": actor.name,
            "senderRole": actor.side().role_name(),
            "content": cmd.body.as_str(),
            "timestamp": omnibiz_shared::service::views::iso(chrono::Utc::now()),
            "status": "sent",
            "seq": seq,
            "attachments": cmd.attachments,
            "clientMessageId": cmd.client_message_id.as_ref().map(|c| c.as_str()),
        });
        let topic = Topic::Conversation(conv);
        self.messaging.publish(topic, EventKind::MessageCreated, Some(conv), message.clone(), Some(source)).await;
        Ok(message)
    }

    async fn typing(&self, id: ConnId, actor: &Actor, data: &Value, start: bool) -> Result<ConversationId, EventError> {
        let conv = events::conversation(data)?;
        let joined = self.lock().conns.get(&id).is_some_and(|c| c.joined.contains(&conv));
        if !joined {
            self.messaging.visible_conversation(actor, conv).await?;
        }
        if start {
            if self.typing_limit.check_key(&actor.principal.room()).is_err() {
                metrics::counter!("gateway_rate_limited_total", "event" => "typing").increment(1);
                return Err(EventError::new("RATE_LIMITED", "typing events too fast"));
            }
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
    fn arm_typing_expiry(&self, id: ConnId, actor: Actor, conv: ConversationId) {
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

    async fn publish_typing(&self, actor: &Actor, conv: ConversationId, start: bool) {
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

    async fn publish_presence(&self, actor: &Actor, conv: ConversationId, online: bool) {
        let payload = json!({"userId": actor.principal.id_hex(), "online": online, "conversationId": conv.to_hex()});
        self.messaging.publish(Topic::Conversation(conv), EventKind::Presence, Some(conv), payload, None).await;
    }

    async fn mark_read(&self, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let receipt = match events::mark_read(data)? {
            ReadTarget::Message(m) => self.messaging.mark_read(actor, m).await?,
            ReadTarget::Seq(c, seq) => self.messaging.mark_read_up_to(actor, c, seq).await?,
        };
        Ok(serde_json::to_value(receipt).unwrap_or_default())
    }

    async fn delivered(&self, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let (conv, msg) = events::delivered(data)?;
        let changed = self.messaging.mark_delivered(actor, conv, msg).await?;
        Ok(json!({"conversationId": conv.to_hex(), "messageId": msg.to_hex(), "changed": changed}))
    }

    fn emit_to(&self, id: ConnId, event: &OutEvent) {
        let handle = self.lock().conns.get(&id).map(|c| Arc::clone(&c.handle));
        if let Some(h) = handle {
            self.deliver(&h, event);
        }
    }

    /// Sends; a client whose buffer is full is dropped, not waited for.
    fn deliver(&self, h: &Arc<dyn Connection>, event: &OutEvent) -> bool {
        match h.send(event) {
            Ok(()) => {
                metrics::counter!("gateway_events_out_total", "event" => event.name).increment(1);
                true
            }
            Err(SendError::Full) => {
                metrics::counter!("gateway_slow_clients_dropped_total").increment(1);
                h.close(CloseReason::SlowClient);
                false
            }
            Err(SendError::Closed) => false,
        }
    }

    /// For a `message.created` envelope and one member: which event, if any.
    /// `from` is the local connection the envelope came from (see [`Hub::local_source`]).
    fn message_event_for(
        &self,
        seq: Option<i64>,
        from: Option<ConnId>,
        sender: Option<PrincipalKey>,
        id: ConnId,
        conn: &Conn,
        member: &mut Member,
    ) -> Option<&'static str> {
        if from == Some(id) {
            // The sending socket got `message_sent` directly; still record the seq.
            if let (Some(r), Some(seq)) = (member.recovery.as_mut(), seq) {
                r.delivered.accept(seq);
            }
            return None;
        }
        if let Some(r) = member.recovery.as_mut() {
            let seq = seq?;
            if !r.delivered.accept(seq) {
                return None;
            }
        }
        let mine = sender == Some(key_of(&conn.actor.principal));
        Some(if mine { "message_sent" } else { "message_received" })
    }

    /// Fetches from the store what local members may have missed while the
    /// bus was away (or behind) and delivers it through [`Hub::dispatch`],
    /// which sends each message once per room even when it also arrives
    /// live. Rooms are walked one at a time to spare the store after a
    /// Redis failover, when every gateway resyncs at once.
    pub async fn resync(&self) {
        if self.config.relay_only {
            return; // nothing is stored in that mode
        }
        let rooms: Vec<(ConversationId, i64)> = self.lock().rooms.iter().map(|(c, r)| (*c, r.seen.floor())).collect();
        metrics::counter!("gateway_resyncs_total").increment(1);
        let page = self.config.replay_page.max(1);
        let mut fetched = 0usize;
        for (conv, mut after) in rooms {
            loop {
                let msgs = match self.messaging.stored_after(conv, after, page).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, conversation = %conv, "resync: reading missed messages failed");
                        break;
                    }
                };
                for m in &msgs {
                    after = after.max(m.seq);
                    let payload = serde_json::to_value(m).unwrap_or_default();
                    let env = Envelope::new(EventKind::MessageCreated, Some(conv), payload);
                    self.dispatch(&Published { topic: Topic::Conversation(conv), envelope: Arc::new(env) });
                }
                fetched += msgs.len();
                if msgs.len() < page {
                    break;
                }
            }
        }
        tracing::info!(fetched, "resynced local rooms from the store after a bus interruption");
    }

    /// Fans one bus event out to the local sockets it concerns.
    pub fn dispatch(&self, published: &Published) {
        let env = &published.envelope;
        let mut dropped = Vec::new();
        let mut ix = self.lock();
        let Index { conns, rooms, personal, .. } = &mut *ix;
        match &published.topic {
            Topic::Conversation(conv) => {
                let Some(room) = rooms.get_mut(conv) else { return };
                if env.kind == EventKind::MessageCreated {
                    let latency = (chrono::Utc::now().timestamp_millis() - env.ts).max(0) as f64 / 1000.0;
                    metrics::histogram!("gateway_delivery_latency_seconds").record(latency);
                }
                let simple = match env.kind {
                    EventKind::ConversationRead => Some("messages_read"),
                    EventKind::MessageStatus => Some("message_status"),
                    EventKind::ConversationUpdated => Some("conversation_updated"),
                    _ => None,
                };
                let shared = simple.map(|name| OutEvent::raw(name, &env.payload));
                // Routing fields, scanned once from the raw payload.
                let meta = env.meta();
                // The same stored message twice (a resync racing the live
                // event): deliver it once. Relay-only seqs are not unique.
                if env.kind == EventKind::MessageCreated
                    && !self.config.relay_only
                    && let Some(seq) = meta.seq
                    && !room.seen.accept(seq)
                {
                    return;
                }
                // Who typed / came online: parsed once, compared without allocating per socket.
                let actor = meta.user_id.as_deref().and_then(|s| ObjectId::parse_str(s).ok());
                let typing = match env.kind {
                    EventKind::TypingStart => Some(OutEvent::raw("user_typing", &env.payload)),
                    EventKind::TypingStop => Some(OutEvent::raw("user_stopped_typing", &env.payload)),
                    EventKind::Presence => Some(OutEvent::raw("presence", &env.payload)),
                    _ => None,
                };
                let from = self.local_source(env);
                let sender = sender_of(&meta);
                let mut received: Option<Arc<OutEvent>> = None;
                let mut sent: Option<Arc<OutEvent>> = None;
                for (id, member) in room.members.iter_mut() {
                    let id = *id;
                    let Some(conn) = conns.get(&id) else { continue };
                    let ok = if env.kind == EventKind::MessageCreated {
                        if let Some(held) = member.recovery.as_mut().and_then(|r| r.held.as_mut()) {
                            held.push(Arc::clone(env));
                            continue;
                        }
                        // One event (one encoded frame) per name, shared by every socket.
                        let Some(name) = self.message_event_for(meta.seq, from, sender, id, conn, member) else {
                            continue;
                        };
                        let slot = if name == "message_sent" { &mut sent } else { &mut received };
                        let e = slot.get_or_insert_with(|| OutEvent::raw(name, &env.payload));
                        self.deliver(&conn.handle, e)
                    } else if let Some(e) = &typing {
                        // Typing and presence go to the others only.
                        if actor.is_some() && actor == Some(key_of(&conn.actor.principal).1) {
                            continue;
                        }
                        self.deliver(&conn.handle, e)
                    } else if let Some(e) = &shared {
                        self.deliver(&conn.handle, e)
                    } else {
                        continue;
                    };
                    if !ok {
                        dropped.push(id);
                    }
                }
            }
            Topic::Principal(room) => {
                let name = match env.kind {
                    EventKind::Notification => "new_message_notification",
                    EventKind::Presence => "presence",
                    _ => return,
                };
                let Some(p) = personal.get(room) else { return };
                let e = OutEvent::raw(name, &env.payload);
                for id in &p.conns {
                    if let Some(conn) = conns.get(id) {
                        self.deliver(&conn.handle, &e);
                    }
                }
            }
        }
        drop(ix);
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "dropped slow clients");
        }
    }

    /// Forgets rate-limiter state of principals that went quiet (memory bound).
    pub fn prune_limiters(&self) {
        self.send_limit.retain_recent();
        self.typing_limit.retain_recent();
    }
}

/// A principal as (side, id), comparable without allocating.
type PrincipalKey = (Side, ObjectId);

fn key_of(p: &Principal) -> PrincipalKey {
    match p {
        Principal::User { id, .. } => (Side::Owner, id.oid()),
        Principal::Customer { id } => (Side::Customer, id.oid()),
    }
}

/// The sender of a `message.created` payload.
fn sender_of(meta: &PayloadMeta<'_>) -> Option<PrincipalKey> {
    let side = Side::from_role_name(meta.sender_role.as_deref()?)?;
    Some((side, ObjectId::parse_str(meta.sender_id.as_deref()?).ok()?))
}

/// Keeps presence alive and limiter memory bounded, until the hub is dropped.
pub fn spawn_heartbeat(hub: std::sync::Weak<Hub>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            let rooms = hub.personal_rooms();
            hub.presence.refresh(&rooms).await;
            hub.prune_limiters();
        }
    })
}

/// Resyncs from the store each time the bus says events may have been
/// missed, until the hub is dropped.
pub fn spawn_resync(hub: std::sync::Weak<Hub>, mut rx: tokio::sync::broadcast::Receiver<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            // One pass covers a burst of signals.
            while rx.try_recv().is_ok() {}
            let Some(h) = hub.upgrade() else { return };
            h.resync().await;
        }
    })
}

/// Reads the bus and dispatches, until the hub is dropped.
pub fn spawn_dispatcher(
    hub: std::sync::Weak<Hub>,
    mut rx: tokio::sync::broadcast::Receiver<Published>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(p) => match hub.upgrade() {
                    Some(h) => h.dispatch(&p),
                    None => return,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    metrics::counter!("gateway_bus_lagged_total").increment(n);
                    tracing::warn!(missed = n, "dispatcher lagged; resyncing from the store");
                    if let Some(h) = hub.upgrade() {
                        tokio::spawn(async move { h.resync().await });
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
