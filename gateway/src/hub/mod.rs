//! The gateway core: connections, local room index, event handling and
//! fan-out of bus events to local sockets. Protocol-agnostic (see
//! [`crate::transport`]).
//!
//! Split the way the protocol split suggests:
//! - this module: the [`Hub`] itself, admission and the connection
//!   lifecycle (register, connected, disconnected, drain);
//! - `index`: the local index — connections, rooms and their members,
//!   personal rooms — behind one lock;
//! - `handling`: one parse + apply per client event (join, leave, send,
//!   typing, read receipts), each answering an ack or an [`EventError`];
//! - `fanout`: bus envelopes to local sockets, each frame encoded once;
//! - `recovery`: replay after `lastSeq` and the resync after a bus outage;
//! - `tasks`: the background tasks (dispatcher, resync, heartbeat).
//!
//! Locking: one `std::sync::Mutex` over the index. It is never held across an
//! `.await`; sends happen under it because [`Connection::send`] never waits,
//! which keeps per-socket order equal to bus order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnibiz_domain::{ConversationId, ObjectId, Party, Side};
use omnibiz_service::auth::{AuthError, Verifier};
use omnibiz_service::bus::{Envelope, EventKind, PayloadMeta, Published, Resync, Topic};
use omnibiz_service::limits::Action;
use omnibiz_service::messaging::{Actor, Messaging, SendCommand, ServiceError};
use omnibiz_service::presence::Presence;
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
    "edit_message",
    "delete_message",
    "refresh_token",
    "add_reaction",
    "remove_reaction",
    "archive_conversation",
    "unarchive_conversation",
    "assign_conversation",
];

/// The server → client events the hub sends (the `gateway_events_out_total` labels).
pub const OUT_EVENTS: &[&str] = &[
    "message_received",
    "message_sent",
    "new_message_notification",
    "user_typing",
    "user_stopped_typing",
    "messages_read",
    "message_status",
    "presence",
    "conversation_updated",
    "message_error",
    "reaction_added",
    "reaction_removed",
    "conversation_assigned",
    "team_updated",
    "group_members_changed",
];

/// Registers the labelled series the dashboard queries, at zero, so a new
/// pod's panels read 0 rather than "no data" before the first event.
fn register_series() {
    for reason in ["draining", "capacity", "auth", "rate", "principal_cap"] {
        metrics::counter!("gateway_connections_refused_total", "reason" => reason).increment(0);
    }
    for reason in ["token_expired", "revoked", "account_deleted"] {
        metrics::counter!("gateway_sessions_ended_total", "reason" => reason).increment(0);
    }
    metrics::counter!("gateway_sessions_refreshed_total").increment(0);
    for e in EVENTS.iter().chain(&["unknown"]) {
        metrics::counter!("gateway_events_in_total", "event" => *e).increment(0);
    }
    for e in OUT_EVENTS {
        metrics::counter!("gateway_events_out_total", "event" => *e).increment(0);
    }
}

mod fanout;
mod handling;
mod index;
mod recovery;
mod sessions;
mod tasks;

pub use handling::{EventError, Reply};
use index::{Conn, Index, Joined, Member, Order, Recovery, Room, leave_room, member_mut};
pub use sessions::{SessionEnd, spawn_account_check, spawn_session_expiry};
pub use tasks::{spawn_dispatcher, spawn_heartbeat, spawn_resync};

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
    /// Per-conversation counters of the relay-only benchmark mode.
    relay_seq: Mutex<HashMap<ConversationId, i64>>,
}

/// An admitted connection: the account, and when its token expires.
#[derive(Debug, Clone)]
pub struct Admission {
    pub actor: Actor,
    /// The token's `exp` (Unix seconds); the session ends then plus the leeway.
    pub expires_at: u64,
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
        register_series();
        let subs = Subscriptions::new(Arc::clone(messaging.bus()));
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
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

    /// Connections this gateway accepts (admitted and in handshake together).
    pub fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    /// Checks a connection attempt: capacity, token, account. The error text
    /// is what the client's `connect_error` shows.
    pub async fn admit(&self, token: Option<&str>) -> Result<Admission, String> {
        if self.draining.load(Ordering::Acquire) {
            metrics::counter!("gateway_connections_refused_total", "reason" => "draining").increment(1);
            return Err("gateway shutting down, reconnect".into());
        }
        if self.connections() >= self.config.max_connections {
            metrics::counter!("gateway_connections_refused_total", "reason" => "capacity").increment(1);
            return Err("gateway at capacity, retry another".into());
        }
        let session = self.verifier.verify_session(token.unwrap_or("")).map_err(|e: AuthError| {
            metrics::counter!("gateway_connections_refused_total", "reason" => "auth").increment(1);
            e.to_string()
        })?;
        let party = session.principal.party();
        if self.messaging.check_rate(party, Action::Connect).is_err() {
            metrics::counter!("gateway_connections_refused_total", "reason" => "rate").increment(1);
            return Err("too many connection attempts for this account; retry in a few seconds".into());
        }
        let here = self.lock().personal.get(&party).map_or(0, |p| p.conns.len());
        let max = self.config.max_sockets_per_principal;
        // Counted here first: a principal at the cap on this gateway costs no Redis read.
        if here >= max || here + self.presence.elsewhere(&party.room()).await >= max {
            metrics::counter!("gateway_connections_refused_total", "reason" => "principal_cap").increment(1);
            return Err(format!("this account already has {max} connections open; close one first"));
        }
        let actor = self.messaging.session_actor(&session).await.map_err(|e| match e {
            ServiceError::Unauthorized(m) => m,
            other => EventError::from(other).error,
        })?;
        Ok(Admission { actor, expires_at: session.expires_at })
    }

    /// Registers an admitted connection in the index, synchronously, so
    /// events that arrive right after the handshake find it. Then call
    /// [`Hub::connected`] to join the personal room's topic and count for presence.
    pub fn register(&self, handle: Arc<dyn Connection>, admitted: Admission) -> ConnId {
        let Admission { actor, expires_at } = admitted;
        // Starts at 1; 2^64 registrations never wrap in practice.
        let id = ConnId::new(self.next_id.fetch_add(1, Ordering::Relaxed)).unwrap_or(ConnId::MIN);
        let party = actor.principal.party();
        {
            let mut ix = self.lock();
            ix.conns.insert(id, Conn { handle, actor: Arc::new(actor), joined: Joined::new(), expires_at });
            ix.personal.entry(party).or_default().conns.push(id);
        }
        let n = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("gateway_connections").set(n as f64);
        id
    }

    /// Second half of connecting: the first local connection of a principal
    /// subscribes its personal topic and marks it online.
    pub async fn connected(&self, id: ConnId) {
        let (party, first, count) = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.get(&id) else { return };
            let party = conn.actor.principal.party();
            let Some(p) = ix.personal.get_mut(&party) else { return };
            // Only the first local connection of a principal subscribes.
            (party, !std::mem::replace(&mut p.live, true), p.conns.len())
        };
        if first && let Err(e) = self.subs.acquire(&Topic::Principal(party)).await {
            tracing::warn!(error.cause_chain = ?e, "personal room subscription failed; notifications may be missed");
        }
        // Every connection updates the count other gateways cap against.
        self.presence.set_local(&party.room(), count).await;
    }

    /// Forgets a connection: leaves its rooms, stops its typing, updates presence.
    pub async fn disconnected(&self, id: ConnId) {
        let (conn, rooms_left, last_personal, typing, remaining) = {
            let mut ix = self.lock();
            let Some(conn) = ix.conns.remove(&id) else { return };
            // Every membership holds one subscription reference, released below.
            let left = conn.joined.clone();
            for c in &left {
                leave_room(&mut ix.rooms, *c, id);
            }
            let personal = conn.actor.principal.party();
            let (last, remaining) = match ix.personal.get_mut(&personal) {
                Some(p) => {
                    p.conns.retain(|c| *c != id);
                    (p.conns.is_empty(), p.conns.len())
                }
                None => (false, 0),
            };
            let last = last && ix.personal.remove(&personal).is_some_and(|p| p.live);
            let typing: Vec<ConversationId> =
                conn.joined.iter().copied().filter(|c| ix.typing.contains_key(&(id, *c))).collect();
            for c in &typing {
                if let Some(t) = ix.typing.remove(&(id, *c)) {
                    t.abort();
                }
            }
            (conn, left, last, typing, remaining)
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
            let party = conn.actor.principal.party();
            self.subs.release(&Topic::Principal(party)).await;
            self.presence.set_local(&party.room(), 0).await;
            for c in &conn.joined {
                self.publish_presence(&conn.actor, *c, false).await;
            }
        } else if remaining > 0 {
            self.presence.set_local(&conn.actor.principal.party().room(), remaining).await;
        }
    }

    /// Every personal room held here, with its connection count (for the presence heartbeat).
    pub fn personal_rooms(&self) -> Vec<(String, usize)> {
        let parties: Vec<(Party, usize)> = self.lock().personal.iter().map(|(p, e)| (*p, e.conns.len())).collect();
        parties.into_iter().map(|(p, n)| (p.room(), n)).collect()
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
}

/// The sender of a `message.created` payload.
fn sender_of(meta: &PayloadMeta<'_>) -> Option<Party> {
    let side = Side::from_role_name(meta.sender_role.as_deref()?)?;
    Some(Party::of(side, ObjectId::parse_str(meta.sender_id.as_deref()?).ok()?))
}
