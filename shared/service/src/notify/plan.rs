//! Planning: which notifications a pass of outbox events makes (who is
//! told, on which channel, when), beside its webhook deliveries.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use omnibiz_domain::notification::{Preferences, PushSubscription};
use omnibiz_domain::webhook::Target;
use omnibiz_domain::{ConversationId, CustomerId, Party, UserId};
use omnibiz_store::StoreResult;
use serde_json::json;

use super::{Notifier, count};
use crate::webhooks::{Delivery, DeliveryStatus, HookEvent, OutboxEvent, UnreadCheck};

impl Notifier {
    /// The notifications of a pass of outbox events: for each event (same
    /// order), the deliveries to add beside its webhook deliveries.
    /// `parties` is each event's conversation's owner and customer (`None`:
    /// the conversation is gone).
    pub async fn plan(
        &self,
        events: &[OutboxEvent],
        parties: &[Option<(UserId, CustomerId)>],
    ) -> StoreResult<Vec<Vec<Delivery>>> {
        let mut out: Vec<Vec<Delivery>> = vec![Vec::new(); events.len()];
        let push = self.cfg.vapid.is_some();
        if !push && self.mailer.is_none() {
            return Ok(out);
        }
        // Within the pass, a conversation's latest message per recipient stands for its burst.
        let mut latest: HashMap<(ConversationId, Party), (usize, DateTime<Utc>)> = HashMap::new();
        // Groups' customers, read once per pass.
        let mut groups: HashMap<ConversationId, Vec<CustomerId>> = HashMap::new();
        for (i, (e, p)) in events.iter().zip(parties).enumerate() {
            let Some((owner, customer)) = *p else { continue };
            // An internal note notifies no one (the customer must never see it);
            // nor does a group's system record.
            if e.kind != HookEvent::MessageCreated || e.data["isPrivate"] == true || e.data["isSystem"] == true {
                continue;
            }
            let recipients = if omnibiz_domain::Conversation::is_group_marker(e.conversation, customer) {
                let members = match groups.entry(e.conversation) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let conv = self.store.get_conversation(e.conversation).await?;
                        v.insert(conv.and_then(|c| c.group).map(|g| g.members).unwrap_or_default())
                    }
                };
                group_recipients(e, owner, members)
            } else {
                vec![recipient_of(e, owner, customer)]
            };
            for recipient in recipients {
                let slot = latest.entry((e.conversation, recipient)).or_insert((i, e.at));
                if slot.0 != i {
                    slot.0 = i;
                    if push {
                        count("push", "collapsed");
                    }
                }
            }
        }
        // Every recipient's browsers in one read for the whole pass, not one per recipient.
        let subs: HashMap<Party, Vec<PushSubscription>> = if push {
            let recipients: std::collections::HashSet<Party> = latest.keys().map(|(_, r)| *r).collect();
            let recipients: Vec<Party> = recipients.into_iter().collect();
            self.store.subscriptions_of_many(&recipients).await?
        } else {
            HashMap::new()
        };
        let mut prefs: HashMap<Party, Preferences> = HashMap::new();
        for ((conversation, recipient), (i, first_at)) in latest {
            let e = &events[i];
            let Some((owner, _)) = parties[i] else { continue };
            let seq = e.data["seq"].as_i64().unwrap_or(0);
            let recipient_owner = recipient.side() == omnibiz_domain::Side::Owner;
            // A group's customer reads for themselves.
            let member = match recipient {
                Party::Customer(c) if groups.contains_key(&conversation) => Some(c),
                _ => None,
            };
            let now = Utc::now();
            let delivery = |id: String, target: Target, due, check_seq, body: String| Delivery {
                id,
                target,
                owner,
                event_id: e.id.clone(),
                kind: HookEvent::MessageCreated,
                conversation,
                body,
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_at: due,
                created_at: now,
                updated_at: now,
                log: Vec::new(),
                unread_check: Some(UnreadCheck { recipient_owner, seq: check_seq, member }),
            };
            if push {
                let browsers = subs.get(&recipient).map_or(&[][..], Vec::as_slice);
                // One delivery per browser and window: every message of the window takes
                // the same id (on any pod), due once the window is over — so whichever
                // message planned it, the window's latest is in when it is sent.
                let window = self.window(e.at);
                let due = (e.at + chrono::Duration::from_std(self.cfg.push_delay).unwrap_or_default())
                    .max(self.window_end(window));
                for s in browsers.iter() {
                    let id = format!("push_{}.{}.{window}", conversation.to_hex(), s.id.to_hex());
                    let body = json!({ "window": window }).to_string();
                    out[i].push(delivery(id, Target::Push(s.id), due, seq, body));
                }
            }
            if let Some(mailer) = &self.mailer {
                let wants = self.cached_prefs(&mut prefs, recipient).await?;
                if !wants.email || wants.is_muted(conversation) {
                    continue;
                }
                let Some(conv) = self.store.get_conversation(conversation).await? else { continue };
                let read = match member {
                    Some(c) => self.store.mark_member_read(conversation, c, 0, now).await?.read_seq,
                    None => conv.read_seq.get(recipient.side()),
                };
                if read >= seq {
                    continue; // read already: the next unread message starts the next burst
                }
                let first_unread = read + 1;
                let business = self.cached_prefs(&mut prefs, Party::Owner(owner)).await?;
                let delay = business
                    .email_delay_secs
                    .map_or(mailer.config().default_delay, |s| Duration::from_secs(u64::from(s)));
                let due = first_at + chrono::Duration::from_std(delay).unwrap_or_default();
                let who = match member {
                    Some(c) => format!("m{}", c.to_hex()),
                    None => (if recipient_owner { "o" } else { "c" }).to_owned(),
                };
                let id = format!("mail_{}_{who}_{first_unread}", conversation.to_hex());
                out[i].push(delivery(id, Target::Email(recipient), due, first_unread, "{}".into()));
            }
        }
        Ok(out)
    }

    /// Push windows are `push_delay` long (at least a second).
    fn window_ms(&self) -> i64 {
        i64::try_from(self.cfg.push_delay.as_millis()).unwrap_or(i64::MAX).max(1_000)
    }

    /// The push window a moment falls in.
    fn window(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis().div_euclid(self.window_ms())
    }

    pub(super) fn window_end(&self, window: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(window.saturating_add(1).saturating_mul(self.window_ms())).unwrap_or_default()
    }

    async fn cached_prefs(&self, cache: &mut HashMap<Party, Preferences>, p: Party) -> StoreResult<Preferences> {
        if let Some(hit) = cache.get(&p) {
            return Ok(hit.clone());
        }
        let got = self.store.preferences(p).await?;
        cache.insert(p, got.clone());
        Ok(got)
    }
}

/// Who a message event is for: the participant who did not send it.
fn recipient_of(e: &OutboxEvent, owner: UserId, customer: CustomerId) -> Party {
    if e.data["senderRole"].as_str() == Some("customer") { Party::Owner(owner) } else { Party::Customer(customer) }
}

/// Who a group message notifies: every member but its sender, and the
/// business when a customer wrote.
fn group_recipients(e: &OutboxEvent, owner: UserId, members: &[CustomerId]) -> Vec<Party> {
    let sender = e.data["senderId"].as_str().unwrap_or("");
    let mut out: Vec<Party> = members.iter().filter(|m| m.to_hex() != sender).map(|m| Party::Customer(*m)).collect();
    if e.data["senderRole"].as_str() == Some("customer") {
        out.push(Party::Owner(owner));
    }
    out
}
