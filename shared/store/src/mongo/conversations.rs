//! [`ConversationStore`] on MongoDB.

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Document, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use omnibiz_domain::webhook::HookEvent;
use omnibiz_domain::{Conversation, ConversationId, ConversationPatch, CustomerId, Party, Side, UserId, events};

use super::MongoStore;
use super::codec::*;
use super::errors::*;
use crate::prelude::*;
use crate::{
    Assigned, AssignmentCounts, ConversationCounts, ConversationQuery, MemberRead, Participants, ReadOutcome,
    StoreError, StoreResult, TeamReadFrom,
};

#[async_trait]
impl ConversationStore for MongoStore {
    async fn get_or_create_conversation(
        &self,
        who: &Participants,
        now: DateTime<Utc>,
    ) -> StoreResult<(Conversation, bool)> {
        let what = "creating a conversation";
        let fresh = Conversation::new(who.owner, who.customer, now);
        let pair = doc! {"businessOwnerId": who.owner.oid(), "customerId": who.customer.oid()};
        // What the seed's Conversation model writes (names, unreadCount, status,
        // tags, priority, timestamps, `__v`), plus our `lastSeq`, `readSeq`
        // and `activityAt`. `lastMessage` stays unset until the first message.
        let on_insert = doc! {
            "_id": fresh.id.oid(),
            "businessOwnerName": &who.owner_name, "customerName": &who.customer_name,
            "customerEmail": &who.customer_email, "customerPhone": who.customer_phone.clone(),
            "unreadCount": {"businessOwner": 0_i32, "customer": 0_i32},
            "status": fresh.status.as_str(), "tags": Vec::<String>::new(), "priority": fresh.priority.as_str(),
            "lastSeq": 0_i64,
            "readSeq": {"businessOwner": 0_i64, "customer": 0_i64},
            "createdAt": date(now), "updatedAt": date(now), "activityAt": date(now), "__v": 0_i32,
            // The webhook outbox entry for `conversation.created`, atomic with the insert.
            "hooks": {events::new_event_id(): hook_entry(HookEvent::ConversationCreated, now, doc! {})},
            "hookPending": true,
        };
        let result = self
            .conversations
            .find_one_and_update(pair.clone(), doc! {"$setOnInsert": on_insert})
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(d)) => {
                let conv = conv_from(&d).context(what)?;
                let created = conv.id == fresh.id;
                return Ok((conv, created));
            }
            // A concurrent upsert won the race: read the winner's document.
            Ok(None) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(classify(what, e)),
        }
        let conv = self.find_conv(pair).await?.context("conversation vanished after a concurrent create")?;
        Ok((conv, false))
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        self.find_conv(doc! {"_id": id.oid()}).await
    }

    async fn list_conversations(&self, q: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        let mut filter = party_filter(q.party);
        if let Some(cur) = q.before {
            let at = date(cur.at);
            let page = doc! {"$or": [{"activityAt": {"$lt": at}}, {"activityAt": at, "_id": {"$lt": cur.id.oid()}}]};
            filter = doc! {"$and": [filter, page]};
        }
        if let Some(customers) = &q.customers {
            if customers.is_empty() {
                return Ok(Vec::new());
            }
            let oids: Vec<ObjectId> = customers.iter().map(CustomerId::oid).collect();
            filter.insert("customerId", doc! {"$in": oids});
        }
        if let Some(archived) = q.archived {
            // Both may use `$or` (the cursor's): combine under `$and`.
            let cond = archived_filter(q.party.side(), archived);
            filter = doc! {"$and": [filter, cond]};
        }
        if let Some(cond) = assigned_filter(q.assigned) {
            filter = doc! {"$and": [filter, cond]};
        }
        self.find_convs(filter, Some(q.limit)).await
    }

    async fn conversations_with(&self, owner: UserId, customers: &[CustomerId]) -> StoreResult<Vec<Conversation>> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let oids: Vec<ObjectId> = customers.iter().map(CustomerId::oid).collect();
        self.find_convs(doc! {"businessOwnerId": owner.oid(), "customerId": {"$in": oids}}, None).await
    }

    async fn set_archived(
        &self,
        id: ConversationId,
        side: Side,
        archived: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "archiving a conversation";
        let key = if side == Side::Owner { "archived.businessOwner" } else { "archived.customer" };
        let set = doc! {key: archived, "updatedAt": date(now)};
        let filter = doc! {"_id": id.oid()};
        if side == Side::Owner && !archived {
            // Unarchiving reopens what the seed's status had archived.
            self.conversations
                .update_one(doc! {"_id": id.oid(), "status": "archived"}, doc! {"$set": {"status": "active"}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        let d = self
            .conversations
            .find_one_and_update(filter, doc! {"$set": set})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        d.as_ref().map(conv_from).transpose().context(what).map_err(StoreError::Other)
    }

    async fn conversation_counts(&self, party: Party) -> StoreResult<ConversationCounts> {
        let what = "counting conversations";
        let mine = party_filter(party);
        let all = self.conversations.count_documents(mine.clone()).await.map_err(|e| classify(what, e))?;
        let archived = self
            .conversations
            .count_documents(doc! {"$and": [mine, archived_filter(party.side(), true)]})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(ConversationCounts { active: all.saturating_sub(archived), archived })
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "updating a conversation";
        let mut set = doc! {"updatedAt": date(now)};
        if let Some(s) = patch.status {
            set.insert("status", s.as_str());
        }
        if let Some(p) = patch.priority {
            set.insert("priority", p.as_str());
        }
        if let Some(t) = &patch.tags {
            set.insert("tags", t.clone());
        }
        // The webhook outbox entry for `conversation.updated`, atomic with the change.
        let changes = bson::to_document(&events::conversation_updated_data(patch)).unwrap_or_default();
        set.insert(
            format!("hooks.{}", events::new_event_id()),
            hook_entry(HookEvent::ConversationUpdated, now, changes),
        );
        set.insert("hookPending", true);
        let d = self
            .conversations
            .find_one_and_update(doc! {"_id": id.oid()}, doc! {"$set": set})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(conv_from(&d).context(what)?),
            None => None,
        })
    }

    async fn set_assignee(
        &self,
        id: ConversationId,
        assignee: Option<UserId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "assigning a conversation";
        let update = match assignee {
            Some(a) => doc! {"$set": {"assignee": a.oid(), "updatedAt": date(now)}},
            None => doc! {"$unset": {"assignee": ""}, "$set": {"updatedAt": date(now)}},
        };
        let d = self
            .conversations
            .find_one_and_update(doc! {"_id": id.oid()}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        d.as_ref().map(conv_from).transpose().context(what).map_err(StoreError::Other)
    }

    async fn claim_unassigned(
        &self,
        id: ConversationId,
        assignee: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "assigning an unassigned conversation";
        let d = self
            .conversations
            .find_one_and_update(
                doc! {"$and": [doc! {"_id": id.oid()}, assigned_filter(Assigned::Unassigned).unwrap_or_default()]},
                doc! {"$set": {"assignee": assignee.oid(), "updatedAt": date(now)}},
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        d.as_ref().map(conv_from).transpose().context(what).map_err(StoreError::Other)
    }

    async fn assignment_counts(&self, business: UserId, me: UserId) -> StoreResult<AssignmentCounts> {
        let what = "counting assignments";
        let open = doc! {"$and": [doc! {"businessOwnerId": business.oid()}, archived_filter(Side::Owner, false)]};
        let count = |extra: Option<Document>| {
            let filter = match extra {
                Some(e) => doc! {"$and": [open.clone(), e]},
                None => open.clone(),
            };
            self.conversations.count_documents(filter)
        };
        let (all, mine, unassigned) = tokio::try_join!(
            count(None),
            count(assigned_filter(Assigned::To(me))),
            count(assigned_filter(Assigned::Unassigned))
        )
        .map_err(|e| classify(what, e))?;
        Ok(AssignmentCounts { all, mine, unassigned })
    }

    async fn create_group(&self, g: &Conversation) -> StoreResult<()> {
        let what = "creating a group";
        let info = g.group.as_ref().context("not a group")?;
        let members: Vec<ObjectId> = info.members.iter().map(CustomerId::oid).collect();
        let now = date(g.created_at);
        // The seed's Conversation fields, `customerId` being the group's own
        // id (no customer has it: the pair index never sees two groups clash).
        let d = doc! {
            "_id": g.id.oid(), "businessOwnerId": g.business_owner_id.oid(), "customerId": g.customer_id.oid(),
            "type": "group", "title": &info.title, "members": members,
            "businessOwnerName": "", "customerName": &info.title, "customerEmail": "",
            "unreadCount": {"businessOwner": 0_i32, "customer": 0_i32},
            "status": g.status.as_str(), "tags": Vec::<String>::new(), "priority": g.priority.as_str(),
            "lastSeq": 0_i64, "readSeq": {"businessOwner": 0_i64, "customer": 0_i64},
            "createdAt": now, "updatedAt": now, "activityAt": now, "__v": 0_i32,
            "hooks": {events::new_event_id(): hook_entry(HookEvent::ConversationCreated, g.created_at, doc! {})},
            "hookPending": true,
        };
        self.conversations.insert_one(d).await.map_err(|e| classify(what, e))?;
        Ok(())
    }

    async fn set_group_members(
        &self,
        id: ConversationId,
        members: &[CustomerId],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "changing a group's members";
        let oids: Vec<ObjectId> = members.iter().map(CustomerId::oid).collect();
        let d = self
            .conversations
            .find_one_and_update(
                doc! {"_id": id.oid(), "type": "group"},
                doc! {"$set": {"members": oids.clone(), "updatedAt": date(now)}},
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        let Some(d) = d else { return Ok(None) };
        // Whoever left takes their read position with them.
        self.group_reads
            .delete_many(doc! {"conversation": id.oid(), "customer": {"$nin": oids}})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(Some(conv_from(&d).context(what)?))
    }

    async fn group_reads(&self, id: ConversationId) -> StoreResult<Vec<MemberRead>> {
        let what = "reading a group's read positions";
        let cursor = self.group_reads.find(doc! {"conversation": id.oid()}).await.map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(MemberRead {
                    customer: d.get_object_id("customer").ok()?.into(),
                    read_seq: Doc(d).int("readSeq"),
                    at: d.get_datetime("readAt").ok()?.to_chrono(),
                })
            })
            .collect())
    }

    async fn mark_member_read(
        &self,
        id: ConversationId,
        customer: CustomerId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome> {
        let what = "marking a group read";
        let owner = doc! {"conversation": id.oid(), "customer": customer.oid()};
        let read_seq = move_position(&self.group_reads, format!("{id}:{customer}"), owner, up_to, now, what).await?;
        let unread = self
            .messages
            .count_documents(doc! {
                "conversationId": id.oid(), "seq": {"$gt": read_seq}, "senderId": {"$ne": customer.oid()},
                "isDeleted": {"$ne": true}, "isPrivate": {"$ne": true}, "isSystem": {"$ne": true},
            })
            .await
            .map_err(|e| classify(what, e))?;
        Ok(ReadOutcome { read_seq, unread: i64::try_from(unread).unwrap_or(i64::MAX) })
    }

    async fn mark_team_read(
        &self,
        id: ConversationId,
        user: UserId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome> {
        let what = "marking a conversation read for a team member";
        let owner = doc! {"conversation": id.oid(), "user": user.oid()};
        let read_seq = move_position(&self.team_reads, format!("{id}:{user}"), owner, up_to, now, what).await?;
        let unread = self.customers_after(id, read_seq).await.map_err(|e| classify(what, e))?;
        Ok(ReadOutcome { read_seq, unread })
    }

    async fn team_unread(&self, user: UserId, convs: &[TeamReadFrom]) -> StoreResult<Vec<(ConversationId, i64)>> {
        let what = "reading a team member's unread counts";
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let key = |c: ConversationId| format!("{c}:{user}");
        let keys: Vec<String> = convs.iter().map(|c| key(c.conversation)).collect();
        let cursor = self.team_reads.find(doc! {"_id": {"$in": keys}}).await.map_err(|e| classify(what, e))?;
        let mut known: HashMap<ConversationId, i64> = HashMap::new();
        for d in collect(what, cursor).await? {
            if let Ok(conv) = d.get_object_id("conversation") {
                known.insert(conv.into(), Doc(&d).int("readSeq"));
            }
        }
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            let read_seq = match known.get(&c.conversation) {
                Some(seq) => *seq,
                None => {
                    // First sight: start where the business is; a racing
                    // first sight or read keeps theirs.
                    let first = self
                        .team_reads
                        .update_one(
                            doc! {"_id": key(c.conversation)},
                            doc! {"$setOnInsert": {
                                "conversation": c.conversation.oid(), "user": user.oid(),
                                "readSeq": c.start, "readAt": date(Utc::now()),
                            }},
                        )
                        .upsert(true)
                        .await;
                    match first {
                        Ok(_) => c.start,
                        Err(e) if is_duplicate_key(&e) => c.start,
                        Err(e) => return Err(classify(what, e)),
                    }
                }
            };
            // Read to the end: nothing to count.
            let unread = if read_seq >= c.last_seq {
                0
            } else {
                self.customers_after(c.conversation, read_seq).await.map_err(|e| classify(what, e))?
            };
            out.push((c.conversation, unread));
        }
        Ok(out)
    }

    async fn forget_team_reads(&self, user: UserId) -> StoreResult<()> {
        let what = "forgetting a team member's read positions";
        self.team_reads.delete_many(doc! {"user": user.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(())
    }
}

impl MongoStore {
    /// The customers' messages of `id` above `seq` that count as unread
    /// (neither notes, system records nor deleted ones).
    async fn customers_after(&self, id: ConversationId, seq: i64) -> mongodb::error::Result<i64> {
        let n = self
            .messages
            .count_documents(doc! {
                "conversationId": id.oid(), "seq": {"$gt": seq}, "senderRole": Side::Customer.role_name(),
                "isDeleted": {"$ne": true}, "isPrivate": {"$ne": true}, "isSystem": {"$ne": true},
            })
            .await?;
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// Moves the read position `_id: key` of `coll` up to `up_to` (never back;
/// created with `owner`'s fields when missing); the position after it.
async fn move_position(
    coll: &mongodb::Collection<Document>,
    key: String,
    mut owner: Document,
    up_to: i64,
    now: DateTime<Utc>,
    what: &'static str,
) -> StoreResult<i64> {
    if up_to > 0 {
        owner.insert("readSeq", up_to);
        owner.insert("readAt", date(now));
        let moved =
            coll.update_one(doc! {"_id": &key, "readSeq": {"$lt": up_to}}, doc! {"$set": owner}).upsert(true).await;
        match moved {
            Ok(_) => {}
            // Already at or past `up_to`: the position never moves back.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(classify(what, e)),
        }
    }
    let d = coll.find_one(doc! {"_id": &key}).await.map_err(|e| classify(what, e))?;
    Ok(d.map_or(0, |d| Doc(&d).int("readSeq")))
}

/// The filter of a list's assignee choice (`None`: any).
fn assigned_filter(a: Assigned) -> Option<Document> {
    let nobody = doc! {"assignee": {"$type": "objectId"}};
    match a {
        Assigned::Any => None,
        Assigned::Unassigned => Some(doc! {"$nor": [nobody]}),
        Assigned::To(u) => Some(doc! {"assignee": u.oid()}),
        Assigned::ToOrNobody(u) => Some(doc! {"$or": [{"assignee": u.oid()}, {"$nor": [nobody]}]}),
    }
}
