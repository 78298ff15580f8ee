//! Fan-out: bus envelopes to local sockets, each frame encoded once.

use super::*;

impl Hub {
    pub(super) fn emit_to(&self, id: ConnId, event: &OutEvent) {
        let handle = self.lock().conns.get(&id).map(|c| Arc::clone(&c.handle));
        if let Some(h) = handle {
            self.deliver(&h, event);
        }
    }

    /// Sends; a client whose buffer is full is dropped, not waited for.
    pub(super) fn deliver(&self, h: &Arc<dyn Connection>, event: &OutEvent) -> bool {
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
    /// `from` is the local connection the envelope came from (see [`Hub::local_source`]);
    /// `private`: an internal note, which a customer's socket never gets.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn message_event_for(
        &self,
        seq: Option<i64>,
        private: bool,
        from: Option<ConnId>,
        sender: Option<Party>,
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
        if private && conn.actor.side() == Side::Customer {
            return None;
        }
        let mine = sender == Some(conn.actor.principal.party());
        Some(if mine { "message_sent" } else { "message_received" })
    }

    /// One stored message to a room's members: `message_received` to the
    /// others, `message_sent` to the sender's other sockets; each frame
    /// encoded once. Members still replaying history get it afterwards.
    pub(super) fn fan_message(
        &self,
        room: &mut Room,
        conns: &HashMap<ConnId, Conn>,
        env: &Arc<Envelope>,
        meta: &PayloadMeta<'_>,
        dropped: &mut Vec<ConnId>,
    ) {
        let from = self.local_source(env);
        let sender = sender_of(meta);
        let private = meta.is_private == Some(true);
        let mut received: Option<Arc<OutEvent>> = None;
        let mut sent: Option<Arc<OutEvent>> = None;
        for (id, member) in room.members.iter_mut() {
            let id = *id;
            let Some(conn) = conns.get(&id) else { continue };
            if let Some(held) = member.recovery.as_mut().and_then(|r| r.held.as_mut()) {
                held.push(Arc::clone(env));
                continue;
            }
            let Some(name) = self.message_event_for(meta.seq, private, from, sender, id, conn, member) else {
                continue;
            };
            let slot = if name == "message_sent" { &mut sent } else { &mut received };
            let e = slot.get_or_insert_with(|| OutEvent::raw(name, &env.payload));
            if !self.deliver(&conn.handle, e) {
                dropped.push(id);
            }
        }
    }

    /// Fans one bus event out to the local sockets it concerns.
    pub fn dispatch(&self, published: &Published) {
        let env = &published.envelope;
        // With traces on, delivering an event continues its publisher's trace.
        let _span = env.traceparent.as_deref().map(|tp| {
            let span = tracing::info_span!("bus.deliver", kind = ?env.kind);
            omnibiz_service::telemetry::follow(&span, Some(tp));
            span.entered()
        });
        let mut dropped = Vec::new();
        let mut blocked = Vec::new();
        let mut ix = self.lock();
        let Index { conns, rooms, personal, .. } = &mut *ix;
        match &published.topic {
            Topic::Conversation(conv) => {
                let Some(room) = rooms.get_mut(conv) else { return };
                if env.kind == EventKind::MessageCreated {
                    let latency = (chrono::Utc::now().timestamp_millis() - env.ts).max(0) as f64 / 1000.0;
                    metrics::histogram!("gateway_delivery_latency_seconds").record(latency);
                    // Stored messages go out in seq order, each once: one that
                    // arrives ahead of a missing seq waits for it (see `in_order`).
                    // Relay-only seqs are neither unique nor ordered.
                    // The payload is scanned for its routing fields once.
                    let meta = env.meta();
                    match meta.seq.filter(|_| !self.config.relay_only).map(|seq| room.in_order(seq, env)) {
                        None | Some(Order::Now) => {
                            self.fan_message(room, conns, env, &meta, &mut dropped);
                            if room.gap.is_some() {
                                let mut unblocked = Vec::new();
                                room.release(&mut unblocked);
                                for e in &unblocked {
                                    self.fan_message(room, conns, e, &e.meta(), &mut dropped);
                                }
                            }
                        }
                        Some(Order::Late) => {
                            metrics::counter!("gateway_late_deliveries_total").increment(1);
                            self.fan_message(room, conns, env, &meta, &mut dropped);
                        }
                        Some(Order::Held { opened: true }) => self.watch_gap(*conv),
                        Some(Order::Held { opened: false } | Order::Duplicate) => {}
                    }
                } else {
                    let simple = match env.kind {
                        EventKind::ConversationRead => Some("messages_read"),
                        EventKind::MessageStatus => Some("message_status"),
                        EventKind::ConversationUpdated => Some("conversation_updated"),
                        EventKind::MessageUpdated => Some("message_updated"),
                        EventKind::MessageDeleted => Some("message_deleted"),
                        EventKind::ReactionAdded => Some("reaction_added"),
                        EventKind::ReactionRemoved => Some("reaction_removed"),
                        EventKind::ConversationAssigned => Some("conversation_assigned"),
                        EventKind::GroupMembersChanged => Some("group_members_changed"),
                        _ => None,
                    };
                    let shared = simple.map(|name| OutEvent::raw(name, &env.payload));
                    // Who typed / came online: parsed once, compared without allocating per socket.
                    let meta = env.meta();
                    let actor = meta.user_id.as_deref().and_then(|s| ObjectId::parse_str(s).ok());
                    let private = meta.is_private == Some(true);
                    let assignee = meta.assignee.as_deref().and_then(|s| s.parse::<omnibiz_domain::UserId>().ok());
                    let typing = match env.kind {
                        EventKind::TypingStart => Some(OutEvent::raw("user_typing", &env.payload)),
                        EventKind::TypingStop => Some(OutEvent::raw("user_stopped_typing", &env.payload)),
                        EventKind::Presence => Some(OutEvent::raw("presence", &env.payload)),
                        _ => None,
                    };
                    for (id, _) in room.members.iter() {
                        let Some(conn) = conns.get(id) else { continue };
                        if private && conn.actor.side() == Side::Customer {
                            continue;
                        }
                        // Reassigned away from an agent who sees only theirs: they leave the room.
                        if env.kind == EventKind::ConversationAssigned
                            && let (Some(seat), omnibiz_service::auth::Principal::User { id: me, .. }) =
                                (conn.actor.seat, conn.actor.principal)
                            && !seat.sees(me, assignee)
                        {
                            blocked.push((*id, Arc::clone(&conn.actor), *conv));
                        }
                        // A customer removed from a group: told, then out of the room.
                        if env.kind == EventKind::GroupMembersChanged
                            && let omnibiz_service::auth::Principal::Customer { id: me } = conn.actor.principal
                            && meta.removed.iter().any(|r| r.as_ref() == me.to_hex())
                        {
                            blocked.push((*id, Arc::clone(&conn.actor), *conv));
                        }
                        let ok = if let Some(e) = &typing {
                            // Typing and presence go to the others only.
                            if actor.is_some() && actor == Some(conn.actor.principal.party().oid()) {
                                continue;
                            }
                            self.deliver(&conn.handle, e)
                        } else if let Some(e) = &shared {
                            self.deliver(&conn.handle, e)
                        } else {
                            continue;
                        };
                        if !ok {
                            dropped.push(*id);
                        }
                    }
                }
            }
            Topic::Principal(party) => {
                if env.kind == EventKind::SessionRevoked {
                    for id in personal.get(party).map(|p| p.conns.as_slice()).unwrap_or_default() {
                        if let Some(conn) = conns.get(id) {
                            sessions::end_session(&conn.handle, SessionEnd::Revoked);
                        }
                    }
                    return;
                }
                let name = match env.kind {
                    EventKind::Notification => "new_message_notification",
                    EventKind::Presence => "presence",
                    EventKind::ConversationAssigned => "conversation_assigned",
                    EventKind::TeamUpdated => "team_updated",
                    EventKind::GroupMembersChanged => "group_members_changed",
                    // Per side (the owner's view carries internal triage): on each principal's own topic.
                    EventKind::ConversationUpdated => "conversation_updated",
                    _ => return,
                };
                let Some(p) = personal.get(party) else { return };
                let e = OutEvent::raw(name, &env.payload);
                for id in &p.conns {
                    if let Some(conn) = conns.get(id) {
                        self.deliver(&conn.handle, &e);
                    }
                }
                // A customer's conversation blocked: their sockets leave its room at once.
                if env.kind == EventKind::ConversationUpdated
                    && matches!(party, Party::Customer(_))
                    && let Some(conv) = env.conversation_id.as_deref().and_then(|c| c.parse::<ConversationId>().ok())
                    && serde_json::from_str::<Value>(env.payload.get()).is_ok_and(|v| v["status"] == "blocked")
                {
                    for id in &p.conns {
                        if let Some(conn) = conns.get(id).filter(|c| c.joined.contains(&conv)) {
                            blocked.push((*id, Arc::clone(&conn.actor), conv));
                        }
                    }
                }
            }
        }
        drop(ix);
        if !blocked.is_empty()
            && let Some(hub) = self.me.upgrade()
        {
            tokio::spawn(async move {
                for (id, actor, conv) in blocked {
                    hub.leave(id, &actor, conv).await;
                }
            });
        }
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "dropped slow clients");
        }
    }
}
