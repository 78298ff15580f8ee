//! Recovery: replay after `lastSeq` on join, the resync of live rooms from
//! the store after the bus was away or fell behind, and the filling of a
//! room's gap (a missing seq) from the store.

use super::index::{GAP_GIVE_UP, GAP_POLL};
use super::*;

impl Hub {
    /// Sends every stored message after `after`, then releases held live events, in order.
    pub(super) async fn replay(
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
                        let private = meta.is_private == Some(true);
                        if let Some(name) = self.message_event_for(meta.seq, private, from, sender, id, conn, member) {
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

    /// Subscribes every local topic again after the bus reconnected,
    /// retrying (1 s, 2 s, … up to 30 s apart) until it succeeds.
    pub(super) async fn resubscribe(&self) {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.subs.resubscribe_all().await {
                Ok(n) => {
                    tracing::info!(topics = n, "resubscribed after the bus reconnected");
                    return;
                }
                Err(e) => {
                    tracing::error!(error.cause_chain = ?e, "resubscribing after a reconnect failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
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
        let rooms: Vec<(ConversationId, i64)> = self.lock().rooms.iter().map(|(c, r)| (*c, r.floor)).collect();
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

    /// While a room waits for a missing seq: looks for it in the store every
    /// [`GAP_POLL`] (what it finds goes out through [`Hub::dispatch`], in
    /// order), and after [`GAP_GIVE_UP`] lets the held messages go without it.
    pub(super) fn watch_gap(&self, conv: ConversationId) {
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(GAP_POLL).await;
                let Some(hub) = me.upgrade() else { return };
                let floor = match hub.lock().rooms.get(&conv) {
                    Some(r) if r.gap.is_some() => r.floor,
                    _ => return,
                };
                let answered = match hub.messaging.stored_after(conv, floor, hub.config.replay_page.max(1)).await {
                    Ok(msgs) => {
                        for m in &msgs {
                            let payload = serde_json::to_value(m).unwrap_or_default();
                            let env = Envelope::new(EventKind::MessageCreated, Some(conv), payload);
                            hub.dispatch(&Published { topic: Topic::Conversation(conv), envelope: Arc::new(env) });
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, conversation = %conv, "filling a gap from the store failed");
                        false
                    }
                };
                let mut guard = hub.lock();
                let Index { conns, rooms, .. } = &mut *guard;
                let Some(room) = rooms.get_mut(&conv) else { return };
                let Some(gap) = room.gap.as_mut() else { return };
                if !answered {
                    // The store cannot say whether the seq exists: the wait starts over.
                    gap.since = std::time::Instant::now();
                    continue;
                }
                if gap.since.elapsed() < GAP_GIVE_UP {
                    continue;
                }
                metrics::counter!("gateway_gaps_skipped_total").increment(1);
                tracing::debug!(conversation = %conv, floor = room.floor, "a missing seq never came: moving on");
                let mut out = Vec::new();
                room.skip_gap(&mut out);
                let mut dropped = Vec::new();
                for e in &out {
                    hub.fan_message(room, conns, e, &e.meta(), &mut dropped);
                }
                if room.gap.is_none() {
                    return;
                }
            }
        });
    }
}
