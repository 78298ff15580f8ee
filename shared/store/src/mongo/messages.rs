//! [`MessageStore`] on MongoDB.

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use omnibiz_domain::search::SearchQuery;
use omnibiz_domain::webhook::HookEvent;
use omnibiz_domain::{ConversationId, LinkPreview, Message, MessageId, Party, Side, events};

use super::codec::*;
use super::errors::*;
use super::inserts;
use super::{MongoStore, READ_STATUS_SLACK};
use crate::prelude::*;
use crate::{Appended, DELETED_PREVIEW, MessageQuery, NewMessage, ReadOutcome, StoreError, StoreResult};

#[async_trait]
impl MessageStore for MongoStore {
    async fn append_message(&self, m: NewMessage) -> StoreResult<Option<Appended>> {
        let what = "appending a message";
        let conv = m.conversation_id.oid();
        let sender_oid = ObjectId::parse_str(&m.sender_id).context("sender id")?;
        // A team member sends for the business: the business is the participant checked.
        let participant = m.acting_for.map_or(sender_oid, |b| b.oid());
        let quiet = m.quiet();
        let party_key = match m.sender_side {
            Side::Owner => "businessOwnerId",
            Side::Customer => "customerId",
        };
        let unread_key = format!("unreadCount.{}", side_key(m.sender_side.other()));
        let at = date(m.created_at);
        let mut set = doc! {
            "lastMessage": {"content": &m.content, "senderId": sender_oid, "timestamp": at},
            "lastMessageTime": at, "activityAt": at, "updatedAt": at, "notesAfterLast": 0_i32,
            // A new message brings the conversation back for its recipient...
            format!("archived.{}", side_key(m.sender_side.other())): false,
        };
        if m.sender_side == Side::Customer {
            // ...and a customer's reopens the seed's `status: archived` (the
            // filter below excludes `blocked`, so this only moves `archived`).
            set.insert("status", "active");
        }
        // Between taking a seq and storing its message, a gateway holds the
        // messages after it (the delivery contract). Under a backlog — a
        // database that just came back — that window must not include
        // waiting for a connection behind hundreds of queued operations:
        // appends queue for a permit *before* taking a seq, and each permit
        // has a connection of its own.
        let _slot = self.appends.permits.acquire().await.context("the append queue closed")?;
        // One round trip takes the seq and checks the sender may send here
        // (participant on their side, conversation not blocked).
        let counter = self
            .appends
            .conversations
            .find_one_and_update(
                if m.sender_side == Side::Customer {
                    // The direct conversation's customer, or a member of the group.
                    doc! {"_id": conv, "$or": [{party_key: participant}, {"members": participant}], "status": {"$ne": "blocked"}}
                } else {
                    doc! {"_id": conv, party_key: participant, "status": {"$ne": "blocked"}}
                },
                if quiet {
                    // A note takes its seq and nothing the customer could see.
                    doc! {"$inc": {"lastSeq": 1_i64, "notesAfterLast": 1_i32}, "$set": {"updatedAt": at}}
                } else {
                    doc! {"$inc": {"lastSeq": 1_i64, &unread_key: 1_i32}, "$set": set}
                },
            )
            .projection(doc! {"lastSeq": 1})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        let Some(counter) = counter else { return Ok(None) };
        let seq = Doc(&counter).int("lastSeq");
        let msg = m.into_stored(seq);
        // The seed's Message model requires senderModel, senderName, senderRole
        // and content; readBy, isDeleted and the timestamps are what it would
        // write itself. `seq` and `clientMessageId` are ours.
        let mut d = doc! {
            "_id": msg.id.oid(), "conversationId": conv, "seq": seq, "senderId": sender_oid,
            "senderModel": msg.sender_side.model_name(),
            "senderRole": msg.sender_side.role_name(), "senderName": &msg.sender_name,
            "content": &msg.content,
            "attachments": bson::to_bson(&msg.attachments).context("encoding attachments")?,
            "status": msg.status.as_str(), "readBy": [], "isDeleted": false,
            "createdAt": at, "updatedAt": at, "__v": 0_i32,
            // The webhook outbox entry for `message.created`, atomic with the message.
            "hook": true,
        };
        if let Some(cmid) = &msg.client_message_id {
            d.insert("clientMessageId", cmid);
        }
        if let Some(r) = msg.reply_to {
            d.insert("replyTo", r.oid());
        }
        if msg.private {
            d.insert("isPrivate", true);
        }
        if msg.system {
            d.insert("isSystem", true);
        }
        if let Some(role) = msg.team_role {
            d.insert("senderTeamRole", role.as_str());
        }
        if let Err(e) = self.appends.inserter.insert(d).await {
            if let (true, Some(cmid)) = (e.is_duplicate_key(), &msg.client_message_id) {
                // A retry of a stored message, found by the unique index rather
                // than by a lookup before every send (a round trip each, for
                // the rare retry). Put back what our update changed, and return
                // the stored message.
                self.undo_append(msg.conversation_id, seq, (!quiet).then_some(unread_key.as_str())).await?;
                let existing = self
                    .find_msg(doc! {"conversationId": conv, "clientMessageId": cmid})
                    .await?
                    .context("duplicate clientMessageId but no stored message")?;
                return Ok(Some(Appended::Existing(existing)));
            }
            return Err(match e {
                inserts::InsertError::Command(e) => classify(what, e),
                other => StoreError::Other(anyhow::anyhow!("{other}").context(what)),
            });
        }
        Ok(Some(Appended::Created(msg)))
    }

    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.find_msg(doc! {"_id": id.oid(), "isDeleted": {"$ne": true}}).await
    }

    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<Message>> {
        let what = "listing messages";
        // `seq > 0` also leaves out a message the Node service stored a moment
        // ago and no adopter has numbered yet (see `legacy`).
        let mut range = doc! {"$gt": q.after.unwrap_or(0).max(0)};
        if let Some(b) = q.before {
            range.insert("$lt", b);
        }
        let mut filter = doc! {"conversationId": q.conversation_id.oid(), "seq": range};
        if !q.include_private {
            filter.insert("isPrivate", doc! {"$ne": true});
        }
        let ascending = q.after.is_some();
        let cursor = self
            .messages
            .find(filter)
            .sort(doc! {"seq": if ascending { 1 } else { -1 }})
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        let mut out: Vec<Message> =
            docs.iter().map(|d| msg_from(d).context(what).map_err(StoreError::Other)).collect::<Result<_, _>>()?;
        if !ascending {
            out.reverse();
        }
        Ok(out)
    }

    async fn mark_read(&self, id: ConversationId, reader: Side, up_to: i64) -> StoreResult<ReadOutcome> {
        let what = "marking messages read";
        let conv = id.oid();
        let key = side_key(reader);
        let read_key = format!("readSeq.{key}");
        // Advancing the read position records `message.read` in the same update;
        // a call that advances nothing (already read that far) records nothing.
        let event = hook_entry(
            HookEvent::MessageRead,
            Utc::now(),
            bson::to_document(&events::message_read_data(reader, up_to)).unwrap_or_default(),
        );
        let advanced = self
            .conversations
            .find_one_and_update(
                doc! {"_id": conv, &read_key: {"$not": {"$gte": up_to}}},
                doc! {"$max": {&read_key: up_to}, "$set": {format!("hooks.{}", events::new_event_id()): event, "hookPending": true}},
            )
            .return_document(ReturnDocument::Before)
            .await
            .map_err(|e| classify(what, e))?;
        // `before` is the read position this call started from; the message
        // statuses to change lie above it (less a slack, below).
        let (c, before) = match advanced {
            Some(d) => {
                let c = conv_from(&d).context(what)?;
                let before = c.read_seq.get(reader);
                (c, before)
            }
            None => {
                let d = self
                    .conversations
                    .find_one(doc! {"_id": conv})
                    .await
                    .map_err(|e| classify(what, e))?
                    .context("the conversation does not exist")?;
                let c = conv_from(&d).context(what)?;
                let before = c.read_seq.get(reader);
                (c, before)
            }
        };
        let read_seq = before.max(up_to);
        let reader_oid = match reader {
            Side::Owner => c.business_owner_id.oid(),
            Side::Customer => c.customer_id.oid(),
        };
        // One read of the reader's range on the index alone: from just below
        // the previous position (the slack re-covers a message whose seq was
        // reserved before a read passed it but which was inserted after that
        // read's update; appends are bounded per process, see `APPEND_SLOTS`)
        // to the end. Which of those to mark read and which still count as
        // unread is decided here, not by the server: a filter on unindexed
        // fields (`status`, `isDeleted`, the sender `$or`) made each receipt
        // cost the whole collection on the MongoDB-compatible test server,
        // and the soak's latency drifted with the data (RELIABILITY.md).
        let from = (before - READ_STATUS_SLACK).max(0);
        let range = collect(
            what,
            self.messages
                .find(doc! {"conversationId": conv, "seq": {"$gt": from}})
                .projection(doc! {
                    "_id": 1, "seq": 1, "senderModel": 1, "senderRole": 1, "status": 1, "isDeleted": 1,
                    "isPrivate": 1, "isSystem": 1,
                })
                .await
                .map_err(|e| classify(what, e))?,
        )
        .await?;
        let mut to_mark = Vec::new();
        let mut unread = 0_u64;
        for d in range.iter().filter(|d| is_from(d, reader.other())) {
            let seq = Doc(d).int("seq");
            if seq <= read_seq {
                if d.get_str("status").ok() != Some("read")
                    && let Ok(id) = d.get_object_id("_id")
                {
                    to_mark.push(id);
                }
            } else if !["isDeleted", "isPrivate", "isSystem"].iter().any(|k| d.get_bool(k).unwrap_or(false)) {
                unread += 1;
            }
        }
        if !to_mark.is_empty() {
            // The seed's `readBy` gets one entry per reader, as the Node service writes it.
            let now = date(Utc::now());
            self.messages
                .update_many(
                    doc! {"_id": {"$in": to_mark}, "status": {"$ne": "read"}},
                    doc! {
                        "$set": {"status": "read", "updatedAt": now},
                        "$push": {"readBy": {"userId": reader_oid, "readAt": now}},
                    },
                )
                .await
                .map_err(|e| classify(what, e))?;
        }
        let unread = i64::try_from(unread).unwrap_or(i64::MAX);
        self.conversations
            .update_one(doc! {"_id": conv}, doc! {"$set": {format!("unreadCount.{key}"): unread}})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(ReadOutcome { read_seq, unread })
    }

    async fn mark_delivered(&self, id: MessageId) -> StoreResult<bool> {
        let r = self
            .messages
            .update_one(doc! {"_id": id.oid(), "status": "sent"}, doc! {"$set": {"status": "delivered"}})
            .await
            .map_err(|e| classify("marking a message delivered", e))?;
        Ok(r.modified_count == 1)
    }

    async fn edit_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        content: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let what = "editing a message";
        let set = doc! {"content": content, "editedAt": date(at), "updatedAt": date(at)};
        let set = change_set(set, HookEvent::MessageUpdated, id, conversation, Some(content), at);
        let filter = doc! {"_id": id.oid(), "conversationId": conversation.oid(), "isDeleted": {"$ne": true}};
        let d = self
            .messages
            .find_one_and_update(filter, doc! {"$set": set})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        let Some(d) = d else { return Ok(None) };
        let m = msg_from(&d).context(what)?;
        self.set_preview_of(&m, content).await?;
        Ok(Some(m))
    }

    async fn delete_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let what = "deleting a message";
        let set = doc! {
            "content": "", "attachments": [], "reactions": [], "isDeleted": true, "editedAt": date(at), "updatedAt": date(at),
        };
        let deleted_set = change_set(set, HookEvent::MessageDeleted, id, conversation, None, at);
        let filter = doc! {"_id": id.oid(), "conversationId": conversation.oid(), "isDeleted": {"$ne": true}};
        let d = self
            .messages
            .find_one_and_update(filter, doc! {"$set": deleted_set})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        let Some(d) = d else { return Ok(None) };
        let m = msg_from(&d).context(what)?;
        let conv = m.conversation_id.oid();
        self.set_preview_of(&m, DELETED_PREVIEW).await?;
        // An unread message that is deleted no longer counts as unread.
        let key = side_key(m.sender_side.other());
        self.conversations
            .update_one(
                doc! {
                    "_id": conv,
                    format!("readSeq.{key}"): {"$not": {"$gte": m.seq}},
                    format!("unreadCount.{key}"): {"$gt": 0},
                },
                doc! {"$inc": {format!("unreadCount.{key}"): -1_i32}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(Some(m))
    }

    async fn set_link_preview(&self, id: MessageId, preview: &LinkPreview) -> StoreResult<Option<Message>> {
        let what = "storing a link preview";
        let doc = bson::to_document(preview).context(what)?;
        let d = self
            .messages
            .find_one_and_update(
                doc! {"_id": id.oid(), "isDeleted": {"$ne": true}},
                doc! {"$set": {"linkPreview": doc}},
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        d.as_ref().map(msg_from).transpose().context(what).map_err(StoreError::Other)
    }

    async fn react(
        &self,
        id: MessageId,
        conversation: ConversationId,
        by: Party,
        emoji: &str,
        add: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(Message, bool)>> {
        let what = "reacting to a message";
        let mine = doc! {"emoji": emoji, "userId": by.oid()};
        let mut filter = doc! {"_id": id.oid(), "conversationId": conversation.oid(), "isDeleted": {"$ne": true}};
        // Only a change matches: the event is recorded exactly when the list changes.
        let change = if add {
            filter.insert("reactions", doc! {"$not": {"$elemMatch": mine.clone()}});
            let entry = doc! {
                "emoji": emoji, "userId": by.oid(), "userRole": by.side().role_name(), "createdAt": date(at),
            };
            doc! {"$push": {"reactions": entry}}
        } else {
            filter.insert("reactions", doc! {"$elemMatch": mine.clone()});
            doc! {"$pull": {"reactions": mine}}
        };
        let data = bson::to_document(&events::reaction_data(id, conversation, emoji, by, add, at)).unwrap_or_default();
        let mut update = change;
        update.insert(
            "$set",
            doc! {
                format!("hooks.{}", events::reaction_event_id(id, at)): hook_entry(HookEvent::MessageReaction, at, data),
                "hookPending": true,
            },
        );
        let changed = self
            .messages
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        match changed {
            Some(d) => Ok(Some((msg_from(&d).context(what)?, true))),
            // Already so (or deleted meanwhile): read it as it is.
            None => Ok(self.get_message(id).await?.filter(|m| m.conversation_id == conversation).map(|m| (m, false))),
        }
    }

    async fn search_messages(
        &self,
        party: Party,
        query: &SearchQuery,
        before: Option<(DateTime<Utc>, MessageId)>,
        limit: usize,
    ) -> StoreResult<Vec<Message>> {
        let what = "searching messages";
        // The party's conversations, then a case-insensitive scan of their
        // messages for every term's words in order (a superset: the caller
        // keeps only word-start matches). A production MongoDB could serve
        // this from a `text` index or Atlas Search; the test server has neither.
        let owner_filter = party_filter(party);
        let convs = collect(
            what,
            self.conversations.find(owner_filter).projection(doc! {"_id": 1}).await.map_err(|e| classify(what, e))?,
        )
        .await?;
        let ids: Vec<ObjectId> = convs.iter().filter_map(|d| d.get_object_id("_id").ok()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let terms: Vec<Document> =
            word_patterns(query).into_iter().map(|p| doc! {"content": {"$regex": p, "$options": "i"}}).collect();
        let mut filter = doc! {
            "conversationId": {"$in": ids}, "seq": {"$gt": 0_i64}, "isDeleted": {"$ne": true}, "$and": terms,
        };
        if party.side() == Side::Customer {
            filter.insert("isPrivate", doc! {"$ne": true});
        }
        if let Some((at, id)) = before {
            filter.insert(
                "$or",
                vec![doc! {"createdAt": {"$lt": date(at)}}, doc! {"createdAt": date(at), "_id": {"$lt": id.oid()}}],
            );
        }
        let cursor = self
            .messages
            .find(filter)
            .sort(doc! {"createdAt": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .max_time(SEARCH_TIME_LIMIT)
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| msg_from(d).context(what).map_err(StoreError::Other)).collect()
    }
}

/// The candidate filter of a search: one literal pattern per word of every
/// term — no quantifier, group or alternation, nothing to backtrack, so each
/// costs a substring scan however the messages and the query are crafted
/// (words joined by `.*?` cost up to length^words per message). Phrases'
/// order and adjacency are checked by the caller on the candidates.
fn word_patterns(query: &SearchQuery) -> Vec<String> {
    query.terms.iter().flat_map(|t| t.words()).map(regex_escape).collect()
}

/// How long the database may spend on one search before it gives up (`maxTimeMS`).
const SEARCH_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl MongoStore {
    /// Reverts the conversation update of an append whose message turned out
    /// to be stored already (a retried `clientMessageId`): the unread bump,
    /// and, while no other send has taken a seq since, the seq itself and
    /// `lastMessage`/`lastMessageTime`/`activityAt` (from the newest stored
    /// message), so a retry leaves no gap and no stale preview. When another
    /// send got in between, its update already replaced those fields; our
    /// seq stays unused (seqs strictly increase, gaps are allowed; gateways
    /// stop waiting for it after a few seconds).
    /// Sets the conversation's preview text to `content` when `m` is its
    /// last message. Internal notes after it (`notesAfterLast`) moved
    /// `lastSeq` but not the preview: the conversation is read first, and
    /// the write applies only while `lastSeq` is still what was read (a
    /// message sent in between owns the preview).
    async fn set_preview_of(&self, m: &Message, content: &str) -> StoreResult<()> {
        let what = "updating a conversation's preview";
        if m.private {
            return Ok(());
        }
        let Some(conv) = self.find_conv(doc! {"_id": m.conversation_id.oid()}).await? else { return Ok(()) };
        if conv.last_message.is_none() || conv.last_message_seq != m.seq {
            return Ok(());
        }
        self.conversations
            .update_one(
                doc! {"_id": conv.id.oid(), "lastSeq": conv.last_seq, "lastMessage": {"$type": "object"}},
                doc! {"$set": {"lastMessage.content": content}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(())
    }

    /// `unread_key`: the counter the append bumped; `None` for a note, which
    /// moved only `lastSeq`.
    async fn undo_append(&self, id: ConversationId, seq: i64, unread_key: Option<&str>) -> StoreResult<()> {
        let what = "undoing a retried append";
        let conv = id.oid();
        let Some(unread_key) = unread_key else {
            self.conversations
                .update_one(
                    doc! {"_id": conv, "lastSeq": seq},
                    doc! {"$inc": {"lastSeq": -1_i64, "notesAfterLast": -1_i32}},
                )
                .await
                .map_err(|e| classify(what, e))?;
            return Ok(());
        };
        // The newest message below ours: in the 64 seqs below first (an
        // index range), else anywhere. A retry means one is stored.
        let near = MessageQuery {
            conversation_id: id,
            before: Some(seq),
            after: Some((seq - 64).max(0)),
            limit: 64,
            include_private: false,
        };
        let mut newest = self.list_messages(&near).await?.pop();
        if newest.is_none() {
            let any =
                MessageQuery { conversation_id: id, before: Some(seq), after: None, limit: 1, include_private: false };
            newest = self.list_messages(&any).await?.pop();
        }
        let mut update = doc! {"$inc": {"lastSeq": -1_i64, unread_key: -1_i32}};
        if let Some(m) = newest {
            let at = date(m.created_at);
            let sender: Bson =
                ObjectId::parse_str(&m.sender_id).map_or_else(|_| m.sender_id.clone().into(), Bson::from);
            update.insert(
                "$set",
                doc! {
                    "lastMessage": {"content": &m.content, "senderId": sender, "timestamp": at},
                    "lastMessageTime": at, "activityAt": at,
                },
            );
        }
        let undone = self
            .conversations
            .update_one(doc! {"_id": conv, "lastSeq": seq}, update)
            .await
            .map_err(|e| classify(what, e))?;
        if undone.matched_count == 0 {
            self.conversations
                .update_one(doc! {"_id": conv}, doc! {"$inc": {unread_key: -1_i32}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_are_literals_that_cannot_backtrack() {
        let q = SearchQuery::parse(r#""a a a a a a a zzz" (x+)+ .* [ab]{2,} "a|b" ship"#).expect("parse");
        let patterns = word_patterns(&q);
        assert!(!patterns.is_empty());
        for p in &patterns {
            // Outside an escape, no character with a meaning in a pattern.
            let mut escaped = false;
            for ch in p.chars() {
                if !escaped && "*+?{}()|[].^$".contains(ch) {
                    panic!("{p:?} is not a literal");
                }
                escaped = !escaped && ch == '\\';
            }
        }
        assert_eq!(patterns[..8], ["a", "a", "a", "a", "a", "a", "a", "zzz"]);
    }
}
