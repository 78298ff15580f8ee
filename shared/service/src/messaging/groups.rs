//! Group conversations: the business's team and several of its customers.
//!
//! The business side creates a group and changes who is in it; every change
//! is a system record in the history (everyone sees it, no one's unread)
//! and a `group_members_changed` event: a removed customer's sockets leave
//! the room at once, an added one hears of the group on their own topic.
//! Each customer has their own read position and unread count.

use std::collections::HashSet;

use chrono::Utc;
use omnibiz_domain::views::{self, ConversationView, MessageView};
use omnibiz_domain::{Conversation, ConversationId, CustomerId, MAX_GROUP_MEMBERS, Party, Side, group_title};
use omnibiz_store::NewMessage;
use serde_json::json;
use tracing::instrument;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::bus::{EventKind, Topic};

impl Messaging {
    /// Creates a group of the caller's business with these of its customers.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn create_group(
        &self,
        actor: &Actor,
        title: &str,
        customers: &[CustomerId],
    ) -> ServiceResult<ConversationView> {
        let business = actor
            .business()
            .ok_or_else(|| ServiceError::Forbidden("only the business's team creates groups".into()))?;
        let title = group_title(title).map_err(ServiceError::Invalid)?;
        let members = self.check_members(business, customers).await?;
        let group = Conversation::new_group(business, title, members.clone(), Utc::now());
        self.store.create_group(&group).await?;
        let names = self.names(&members).await?;
        self.record(actor, &group, format!("{} created the group with {}", actor.name, names.join(", "))).await?;
        self.tell_members(&group, &members, &[]).await;
        Ok(self.views(actor, std::slice::from_ref(&group)).await?.remove(0))
    }

    /// Adds and removes customers of a group (the business side only).
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn change_group(
        &self,
        actor: &Actor,
        id: ConversationId,
        add: &[CustomerId],
        remove: &[CustomerId],
    ) -> ServiceResult<ConversationView> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        if side != Side::Owner {
            return Err(ServiceError::Forbidden("only the business's team changes who is in a group".into()));
        }
        let Some(group) = &conv.group else {
            return Err(ServiceError::Invalid("not a group conversation".into()));
        };
        let added = self.check_members(conv.business_owner_id, add).await?;
        let removed: Vec<CustomerId> = remove.iter().copied().filter(|r| group.members.contains(r)).collect();
        if remove.len() != removed.len() {
            return Err(ServiceError::Invalid("remove: not a member of this group".into()));
        }
        let added: Vec<CustomerId> = added.into_iter().filter(|a| !group.members.contains(a)).collect();
        let mut members: Vec<CustomerId> = group.members.iter().copied().filter(|m| !removed.contains(m)).collect();
        members.extend(added.iter().copied());
        if members.is_empty() {
            return Err(ServiceError::Invalid("a group keeps at least one customer".into()));
        }
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(ServiceError::Invalid(format!("a group holds at most {MAX_GROUP_MEMBERS} customers")));
        }
        if added.is_empty() && removed.is_empty() {
            return Ok(self.views(actor, std::slice::from_ref(&conv)).await?.remove(0));
        }
        let now = self
            .store
            .set_group_members(id, &members, Utc::now())
            .await?
            .ok_or_else(|| ServiceError::NotFound("conversation not found".into()))?;
        self.participants.remember(&now);
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("added {}", self.names(&added).await?.join(", ")));
        }
        if !removed.is_empty() {
            what.push(format!("removed {}", self.names(&removed).await?.join(", ")));
        }
        self.record(actor, &now, format!("{} {}", actor.name, what.join(" and "))).await?;
        self.tell_members(&now, &added, &removed).await;
        Ok(self.views(actor, std::slice::from_ref(&now)).await?.remove(0))
    }

    /// Customers of `business`, each once, at most [`MAX_GROUP_MEMBERS`].
    async fn check_members(
        &self,
        business: omnibiz_domain::UserId,
        ids: &[CustomerId],
    ) -> ServiceResult<Vec<CustomerId>> {
        let mut seen = HashSet::new();
        let unique: Vec<CustomerId> = ids.iter().copied().filter(|c| seen.insert(*c)).collect();
        if unique.len() > MAX_GROUP_MEMBERS {
            return Err(ServiceError::Invalid(format!("a group holds at most {MAX_GROUP_MEMBERS} customers")));
        }
        let found = self.store.customers_by_ids(&unique).await?;
        for c in &unique {
            if !found.iter().any(|f| f.id == *c && f.invited_by == business) {
                return Err(ServiceError::Invalid(format!("customer {c} is not a customer of this business")));
            }
        }
        Ok(unique)
    }

    async fn names(&self, ids: &[CustomerId]) -> ServiceResult<Vec<String>> {
        let found = self.store.customers_by_ids(ids).await?;
        Ok(ids
            .iter()
            .map(|id| found.iter().find(|c| c.id == *id).map_or_else(|| "someone".into(), |c| c.name.clone()))
            .collect())
    }

    /// A system record in the group's history, published to its room.
    async fn record(&self, actor: &Actor, conv: &Conversation, text: String) -> ServiceResult<()> {
        let new = NewMessage {
            conversation_id: conv.id,
            sender_id: actor.principal.id_hex(),
            sender_side: Side::Owner,
            sender_name: actor.name.clone(),
            content: text,
            attachments: Vec::new(),
            client_message_id: None,
            created_at: Utc::now(),
            reply_to: None,
            acting_for: actor.team_role().and(actor.business()),
            team_role: actor.team_role(),
            private: false,
            system: true,
        };
        let Some(stored) = self.store.append_message(new).await? else {
            return Err(ServiceError::Conflict("the conversation changed; try again".into()));
        };
        let json = views::raw_json(&MessageView::from(stored.message()));
        self.publish_raw(Topic::Conversation(conv.id), EventKind::MessageCreated, Some(conv.id), json, None).await;
        Ok(())
    }

    /// `group_members_changed` to the room (removed members' sockets leave
    /// it), to the business, and to everyone added or removed.
    async fn tell_members(&self, conv: &Conversation, added: &[CustomerId], removed: &[CustomerId]) {
        let hex = |v: &[CustomerId]| v.iter().map(CustomerId::to_hex).collect::<Vec<_>>();
        let payload = json!({
            "conversationId": conv.id.to_hex(),
            "title": conv.group.as_ref().map(|g| g.title.clone()),
            "members": hex(conv.group.as_ref().map_or(&[][..], |g| &g.members)),
            "added": hex(added),
            "removed": hex(removed),
        });
        let kind = EventKind::GroupMembersChanged;
        self.publish(Topic::Conversation(conv.id), kind, Some(conv.id), payload.clone(), None).await;
        let mut topics = vec![Party::Owner(conv.business_owner_id)];
        topics.extend(added.iter().chain(removed).map(|c| Party::Customer(*c)));
        for p in topics {
            self.publish(Topic::Principal(p), kind, Some(conv.id), payload.clone(), None).await;
        }
    }
}
