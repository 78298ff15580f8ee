//! Conversations: the list (with search by name), opening one, its messages, recovery, metadata changes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use omnibiz_domain::views::{ConversationView, Counterpart, GroupMemberView, MessageView};
use omnibiz_domain::{Conversation, ConversationId, Customer, CustomerId, Side, User, UserId};
use omnibiz_store::{
    ActivityCursor, Assigned, ConversationCounts, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery,
    Participants, Party, TeamReadFrom,
};
use tracing::instrument;

use super::{
    Actor, MAX_CONVERSATIONS_PAGE, MAX_MESSAGES_PAGE, Messaging, SEARCH_CUSTOMER_CAP, ServiceError, ServiceResult,
    page_size,
};
use crate::auth::{Access, Principal, can_reach_customer};
use crate::bus::{EventKind, Topic};

pub(super) fn not_found_conversation() -> ServiceError {
    ServiceError::NotFound("conversation not found".into())
}

/// Paging for the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationPage {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub q: Option<String>,
    /// Only the caller's archived (`Some(true)`) or active (`Some(false)`) ones; all when `None`.
    pub archived: Option<bool>,
    /// For the business side: by assignee (all the caller may see when `None`).
    pub assigned: Option<AssignedFilter>,
}

/// The conversation list's assignee filter (the business side's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignedFilter {
    /// Assigned to the caller.
    Mine,
    Unassigned,
    /// Everything the caller may see.
    All,
}

/// Paging for messages of one conversation.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePage {
    pub limit: Option<usize>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// A page centred on this `seq` (`before`/`after` ignored).
    pub around: Option<i64>,
}

pub(super) fn encode_activity_cursor(c: &Conversation) -> String {
    format!("{}_{}", c.activity_time().timestamp_millis(), c.id)
}

pub(super) fn decode_activity_cursor(s: &str) -> ServiceResult<ActivityCursor> {
    let bad = || ServiceError::Invalid("cursor is malformed".into());
    let (ms, id) = s.split_once('_').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(bad)?;
    Ok(ActivityCursor { at, id: id.parse().map_err(|_| bad())? })
}

pub(super) fn matches_term(term: &str, fields: &[&str]) -> bool {
    let t = term.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&t))
}

impl Messaging {
    /// The conversation, if `actor` participates in it; else not found.
    pub async fn visible_conversation(&self, actor: &Actor, id: ConversationId) -> ServiceResult<(Conversation, Side)> {
        let conv = self.store.get_conversation(id).await?.ok_or_else(not_found_conversation)?;
        self.participants.remember(&conv);
        match Access::of(&actor.principal, actor.seat, &conv) {
            Access::Participant(side) => Ok((conv, side)),
            Access::Hidden => Err(not_found_conversation()),
        }
    }

    /// [`Messaging::visible_conversation`], for taking part in it now: a
    /// customer whose conversation the business blocked may not read it,
    /// join it, type, edit or send receipts in it (403); the owner still may.
    pub async fn usable_conversation(&self, actor: &Actor, id: ConversationId) -> ServiceResult<(Conversation, Side)> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        refuse_if_blocked(&conv, side)?;
        Ok((conv, side))
    }

    /// The conversations as `actor` sees them, with their own unread counts
    /// (a team member's or, in a business with a team, the owner's own,
    /// starting where the business was when they first saw each one).
    pub(super) async fn views(&self, actor: &Actor, convs: &[Conversation]) -> ServiceResult<Vec<ConversationView>> {
        let mut views = self.shared_views(actor, convs).await?;
        if let Some(me) = self.own_reads(actor).await {
            let from: Vec<TeamReadFrom> = convs
                .iter()
                .map(|c| TeamReadFrom { conversation: c.id, last_seq: c.last_seq, start: c.read_seq.owner })
                .collect();
            for (id, unread) in self.store.team_unread(me, &from).await? {
                if let Some(i) = convs.iter().position(|c| c.id == id) {
                    views[i].unread_count = unread;
                }
            }
        }
        Ok(views)
    }

    /// The conversations as `actor`'s side sees them: on the business side,
    /// the business's unread counts.
    async fn shared_views(&self, actor: &Actor, convs: &[Conversation]) -> ServiceResult<Vec<ConversationView>> {
        let mut views = self.views_for(actor.side(), convs).await?;
        for (c, v) in convs.iter().zip(views.iter_mut()) {
            if c.group.is_some() {
                self.group_view(actor, c, v).await?;
            }
        }
        Ok(views)
    }

    /// A group as `actor` sees it: its title, its customers (names and who is
    /// online), and for a member their own unread count.
    async fn group_view(&self, actor: &Actor, c: &Conversation, v: &mut ConversationView) -> ServiceResult<()> {
        let Some(g) = &c.group else { return Ok(()) };
        let people = self.store.customers_by_ids(&g.members).await?;
        let rooms: Vec<String> = g.members.iter().map(|m| Party::Customer(*m).room()).collect();
        let online = self.presence.online(&rooms).await;
        let members: Vec<GroupMemberView> = g
            .members
            .iter()
            .zip(online)
            .map(|(m, on)| GroupMemberView {
                id: m.to_hex(),
                name: people.iter().find(|p| p.id == *m).map_or_else(|| "Unknown".into(), |p| p.name.clone()),
                is_online: on,
            })
            .collect();
        v.name = g.title.clone();
        v.email = String::new();
        v.phone = None;
        v.customer_id = String::new();
        if let Principal::Customer { id } = actor.principal {
            v.unread_count = self.store.mark_member_read(c.id, id, 0, Utc::now()).await?.unread;
            v.is_online = v.is_online || members.iter().any(|m| m.is_online && m.id != id.to_hex());
        } else {
            v.is_online = members.iter().any(|m| m.is_online);
        }
        v.members = Some(members);
        Ok(())
    }

    /// The conversations as the participant on `side` sees them.
    async fn views_for(&self, side: Side, convs: &[Conversation]) -> ServiceResult<Vec<ConversationView>> {
        let counterparts: Vec<(Counterpart, String)> = match side {
            Side::Owner => {
                let ids: Vec<CustomerId> = convs.iter().map(|c| c.customer_id).collect();
                let found: HashMap<CustomerId, Customer> =
                    self.store.customers_by_ids(&ids).await?.into_iter().map(|c| (c.id, c)).collect();
                convs
                    .iter()
                    .map(|c| {
                        let cp = found.get(&c.customer_id).map_or_else(Counterpart::unknown, Counterpart::from);
                        (cp, format!("customer:{}", c.customer_id))
                    })
                    .collect()
            }
            Side::Customer => {
                let mut owners: HashMap<UserId, Option<User>> = HashMap::new();
                for c in convs {
                    if let std::collections::hash_map::Entry::Vacant(slot) = owners.entry(c.business_owner_id) {
                        slot.insert(self.store.get_user(c.business_owner_id).await?);
                    }
                }
                convs
                    .iter()
                    .map(|c| {
                        let owner = owners.get(&c.business_owner_id).and_then(Option::as_ref);
                        (
                            owner.map_or_else(Counterpart::unknown, Counterpart::from),
                            format!("user:{}", c.business_owner_id),
                        )
                    })
                    .collect()
            }
        };
        let rooms: Vec<String> = counterparts.iter().map(|(_, r)| r.clone()).collect();
        let online = self.presence.online(&rooms).await;
        Ok(convs
            .iter()
            .zip(counterparts.iter())
            .zip(online)
            .map(|((c, (cp, _)), on)| ConversationView::new(c, side, cp, on))
            .collect())
    }

    /// The caller's conversations, most recent activity first.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn list_conversations(
        &self,
        actor: &Actor,
        page: ConversationPage,
    ) -> ServiceResult<(Vec<ConversationView>, Option<String>)> {
        let limit = page_size(page.limit, MAX_CONVERSATIONS_PAGE)?;
        let before = page.cursor.as_deref().map(decode_activity_cursor).transpose()?;
        let term = omnibiz_domain::search_term(page.q.as_deref());
        let mut assigned = Assigned::Any;
        let (party, customers) = match (actor.principal, actor.seat) {
            (Principal::User { id: me, .. }, Some(seat)) => {
                let business = seat.business;
                let customers = match &term {
                    Some(t) => {
                        let q = CustomerQuery {
                            owner: business,
                            q: Some(t.clone()),
                            before: None,
                            limit: SEARCH_CUSTOMER_CAP,
                        };
                        Some(self.store.list_customers(&q).await?.into_iter().map(|c| c.id).collect())
                    }
                    None => None,
                };
                let sees_all = seat.sees_all();
                assigned = match page.assigned {
                    Some(AssignedFilter::Mine) => Assigned::To(me),
                    Some(AssignedFilter::Unassigned) => Assigned::Unassigned,
                    Some(AssignedFilter::All) | None if sees_all => Assigned::Any,
                    Some(AssignedFilter::All) | None => Assigned::ToOrNobody(me),
                };
                (Party::Owner(business), customers)
            }
            (Principal::User { .. }, None) => return Err(ServiceError::Forbidden("no business to list".into())),
            (Principal::Customer { id }, _) => {
                if let (Some(t), Some(owner)) = (&term, actor.invited_by) {
                    let user = self.store.get_user(owner).await?;
                    let hit = user.is_some_and(|u| {
                        let biz = u.business_name.unwrap_or_default();
                        matches_term(t, &[&u.name, &biz, &u.email, u.phone.as_deref().unwrap_or("")])
                    });
                    if !hit {
                        return Ok((Vec::new(), None));
                    }
                }
                (Party::Customer(id), None)
            }
        };
        let q = ConversationQuery { party, customers, before, archived: page.archived, assigned, limit };
        let convs = self.store.list_conversations(&q).await?;
        let next = (convs.len() == limit).then(|| convs.last().map(encode_activity_cursor)).flatten();
        Ok((self.views(actor, &convs).await?, next))
    }

    /// Create-or-get. A business owner names the customer; a customer gets the
    /// conversation with the owner who invited them. Returns `true` when created.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn open_conversation(
        &self,
        actor: &Actor,
        customer: Option<CustomerId>,
    ) -> ServiceResult<(ConversationView, bool)> {
        let not_found_owner = || ServiceError::NotFound("business owner not found".into());
        let (owner, customer) = match actor.principal {
            Principal::User { .. } => {
                let cid = customer.ok_or_else(|| ServiceError::Invalid("customerId is required".into()))?;
                let c = self.store.get_customer(cid).await?;
                match (c, actor.business()) {
                    (Some(c), Some(business)) if can_reach_customer(&actor.principal, Some(business), &c) => {
                        (self.store.get_user(business).await?.ok_or_else(not_found_owner)?, c)
                    }
                    _ => return Err(ServiceError::NotFound("customer not found".into())),
                }
            }
            Principal::Customer { id } => {
                let owner = actor.invited_by.ok_or_else(not_found_owner)?;
                let owner = self.store.get_user(owner).await?.ok_or_else(not_found_owner)?;
                let me = self.store.get_customer(id).await?;
                (owner, me.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?)
            }
        };
        let who = Participants::of(&owner, &customer);
        let (conv, created) = self.store.get_or_create_conversation(&who, Utc::now()).await?;
        // An agent who may not see it (another agent's) learns no more than that it exists elsewhere.
        if Access::of(&actor.principal, actor.seat, &conv) == Access::Hidden {
            return Err(ServiceError::Forbidden("this conversation is assigned to another member of the team".into()));
        }
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        Ok((view, created))
    }

    /// One conversation and a page of its messages, oldest → newest. The
    /// boolean says whether more messages exist in the paging direction.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn conversation_messages(
        &self,
        actor: &Actor,
        id: ConversationId,
        page: MessagePage,
    ) -> ServiceResult<(ConversationView, Vec<MessageView>, bool)> {
        let limit = page_size(page.limit, MAX_MESSAGES_PAGE)?;
        let (conv, side) = self.usable_conversation(actor, id).await?;
        let include_private = side == Side::Owner;
        if let Some(seq) = page.around {
            if seq < 0 {
                return Err(ServiceError::Invalid("around must be a seq (0 or more)".into()));
            }
            // The half up to and including `seq` (one more to know whether older ones exist), then the rest after it.
            let older_n = limit.div_ceil(2);
            let q = MessageQuery {
                conversation_id: id,
                before: Some(seq.saturating_add(1)),
                after: None,
                limit: older_n + 1,
                include_private: side == Side::Owner,
            };
            let mut msgs = self.store.list_messages(&q).await?;
            let more = msgs.len() > older_n;
            if more {
                msgs.remove(0);
            }
            let newer = limit - older_n;
            if newer > 0 {
                let q =
                    MessageQuery { conversation_id: id, before: None, after: Some(seq), limit: newer, include_private };
                msgs.extend(self.store.list_messages(&q).await?);
            }
            let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
            let mut views = self.message_views(&msgs).await?;
            self.group_reads(&conv, &mut views).await?;
            return Ok((view, views, more));
        }
        let q = MessageQuery {
            conversation_id: id,
            before: page.before,
            after: page.after,
            limit: limit + 1,
            include_private,
        };
        let mut msgs = self.store.list_messages(&q).await?;
        let more = msgs.len() > limit;
        if more {
            if page.after.is_some() {
                msgs.truncate(limit);
            } else {
                msgs.remove(0);
            }
        }
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        let mut views = self.message_views(&msgs).await?;
        self.group_reads(&conv, &mut views).await?;
        Ok((view, views, more))
    }

    /// Messages after `after_seq`, oldest first, at most `limit` (recovery on rejoin).
    pub async fn messages_after(
        &self,
        actor: &Actor,
        id: ConversationId,
        after_seq: i64,
        limit: usize,
    ) -> ServiceResult<Vec<MessageView>> {
        let (conv, side) = self.usable_conversation(actor, id).await?;
        let include_private = side == Side::Owner;
        let q = MessageQuery { conversation_id: id, before: None, after: Some(after_seq), limit, include_private };
        let msgs = self.store.list_messages(&q).await?;
        let mut views = self.message_views(&msgs).await?;
        self.group_reads(&conv, &mut views).await?;
        Ok(views)
    }

    /// In a group: who has read each message (`readBy`), and `read` only
    /// once everyone but its sender has. Nothing for a direct conversation.
    async fn group_reads(&self, conv: &Conversation, views: &mut [MessageView]) -> ServiceResult<()> {
        let Some(g) = &conv.group else { return Ok(()) };
        if views.is_empty() {
            return Ok(());
        }
        let reads = self.store.group_reads(conv.id).await?;
        let business = conv.business_owner_id.to_hex();
        for v in views.iter_mut() {
            let from_business = v.sender_role == Side::Owner.role_name();
            let mut by = Vec::new();
            if !from_business && conv.read_seq.owner >= v.seq {
                by.push(omnibiz_domain::views::ReadByView { user_id: business.clone(), read_at: None });
            }
            for r in reads.iter().filter(|r| r.read_seq >= v.seq && r.customer.to_hex() != v.sender_id) {
                by.push(omnibiz_domain::views::ReadByView {
                    user_id: r.customer.to_hex(),
                    read_at: Some(omnibiz_domain::views::iso(r.at)),
                });
            }
            // Everyone else: the business unless it wrote it, every member but the sender.
            let others = g.members.iter().filter(|m| m.to_hex() != v.sender_id).count() + usize::from(!from_business);
            v.status = if by.len() >= others {
                omnibiz_domain::MessageStatus::Read
            } else if v.status == omnibiz_domain::MessageStatus::Read {
                omnibiz_domain::MessageStatus::Delivered
            } else {
                v.status
            };
            v.read_by = Some(by);
        }
        Ok(())
    }

    /// Views of messages with the messages they reply to as they are now
    /// (one read per distinct original; a deleted or missing one shows as deleted).
    pub(super) async fn message_views(&self, msgs: &[omnibiz_domain::Message]) -> ServiceResult<Vec<MessageView>> {
        let mut originals: HashMap<omnibiz_domain::MessageId, Option<omnibiz_domain::Message>> = HashMap::new();
        for r in msgs.iter().filter_map(|m| m.reply_to) {
            if let std::collections::hash_map::Entry::Vacant(slot) = originals.entry(r) {
                // Known in this page already: no read.
                let here = msgs.iter().find(|m| m.id == r).cloned();
                slot.insert(match here {
                    Some(m) => Some(m),
                    None => self.store.get_message(r).await?,
                });
            }
        }
        Ok(msgs
            .iter()
            .map(|m| {
                let mut v = MessageView::from(m);
                if let Some(r) = m.reply_to {
                    v.reply_to =
                        Some(omnibiz_domain::views::QuoteView::of(r, originals.get(&r).and_then(Option::as_ref)));
                }
                v
            })
            .collect())
    }

    /// Stored messages after `after_seq`, oldest first, with no visibility
    /// check: for a gateway re-fetching what its already admitted members
    /// may have missed while the bus was away. Never expose it to a client.
    /// Internal notes included (`isPrivate`): the gateway gives them to the
    /// business side's members only.
    pub async fn stored_after(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: usize,
    ) -> ServiceResult<Vec<MessageView>> {
        let q =
            MessageQuery { conversation_id: id, before: None, after: Some(after_seq), limit, include_private: true };
        Ok(self.store.list_messages(&q).await?.iter().map(MessageView::from).collect())
    }

    /// How many conversations the caller has, active and archived (for them).
    pub async fn conversation_counts(&self, actor: &Actor) -> ServiceResult<ConversationCounts> {
        Ok(self.store.conversation_counts(actor.party()).await?)
    }

    /// Archives (`archived`) or unarchives the conversation for the caller
    /// only; their own sockets hear `conversation_updated` in their view.
    /// A new message from the other side brings it back (the stores do it
    /// with the append).
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn set_archived(
        &self,
        actor: &Actor,
        id: ConversationId,
        archived: bool,
    ) -> ServiceResult<ConversationView> {
        let (_, side) = self.visible_conversation(actor, id).await?;
        let conv = self.store.set_archived(id, side, archived, Utc::now()).await?.ok_or_else(not_found_conversation)?;
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        let payload = serde_json::to_value(&view).unwrap_or_default();
        let topic = Topic::Principal(actor.party());
        self.publish(topic, EventKind::ConversationUpdated, Some(id), payload, None).await;
        Ok(view)
    }

    /// Status, tags and priority; business owner only.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn update_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> ServiceResult<ConversationView> {
        let (_, side) = self.visible_conversation(actor, id).await?;
        if side != Side::Owner {
            return Err(ServiceError::Forbidden("only the business owner can change a conversation".into()));
        }
        if let Some(tags) = &patch.tags
            && (tags.len() > 20 || tags.iter().any(|t| t.is_empty() || t.trim() != t || t.chars().count() > 50))
        {
            return Err(ServiceError::Invalid(
                "tags: at most 20, each 1 to 50 characters without leading or trailing spaces".into(),
            ));
        }
        let conv = self.store.update_conversation(id, &patch, Utc::now()).await?.ok_or_else(not_found_conversation)?;
        // Each side hears of it in its own view, on its own topic: the
        // customer's carries neither the business's tags and priority nor
        // the owner's unread count and the customer's own contact details.
        let one = std::slice::from_ref(&conv);
        let business_view = self.shared_views(actor, one).await?.remove(0);
        let customer_view = self.views_for(Side::Customer, one).await?.remove(0);
        for (party, v) in [
            (Party::Owner(conv.business_owner_id), &business_view),
            (Party::Customer(conv.customer_id), &customer_view),
        ] {
            let payload = serde_json::to_value(v).unwrap_or_default();
            self.publish(Topic::Principal(party), EventKind::ConversationUpdated, Some(id), payload, None).await;
        }
        self.views(actor, one).await.map(|mut v| v.remove(0))
    }

    /// The `seq` of the newest message of `id` actually stored, at most
    /// `last_seq` (the conversation's counter, which a send in flight may
    /// have taken before its insert landed): where a gateway starts a new
    /// room, so that a landing insert still goes out live. Looks in the 64
    /// seqs below `last_seq` first (an index range that costs the same at any
    /// history length), the whole conversation only when that holds nothing.
    pub async fn newest_stored_seq(&self, id: ConversationId, last_seq: i64) -> ServiceResult<i64> {
        let from = (last_seq - 64).max(0);
        let near =
            MessageQuery { conversation_id: id, before: None, after: Some(from), limit: 64, include_private: true };
        if let Some(m) = self.store.list_messages(&near).await?.last() {
            return Ok(m.seq);
        }
        let q = MessageQuery { conversation_id: id, before: None, after: None, limit: 1, include_private: true };
        Ok(self.store.list_messages(&q).await?.last().map_or(0, |m| m.seq))
    }
}

/// A blocked conversation is closed to its customer.
pub(super) fn refuse_if_blocked(conv: &Conversation, side: Side) -> ServiceResult<()> {
    if side == Side::Customer && conv.status == omnibiz_domain::ConversationStatus::Blocked {
        return Err(ServiceError::Forbidden("this conversation is blocked".into()));
    }
    Ok(())
}
