//! [`MessageStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::search::SearchQuery;
use omnibiz_domain::webhook::HookEvent;
use omnibiz_domain::{ConversationId, LinkPreview, Message, MessageId, Party, Side, events};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::*;
use super::schema::*;
use crate::prelude::*;
use crate::{Appended, DELETED_PREVIEW, MessageQuery, NewMessage, ReadOutcome, StoreResult};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append_message(&self, m: NewMessage) -> StoreResult<Option<Appended>> {
        self.with("appending a message", move |c| {
            let tx = c.transaction()?;
            let conv_id = m.conversation_id.to_hex();
            let party_col = match m.sender_side {
                Side::Owner => "business_owner_id",
                Side::Customer => "customer_id",
            };
            // Only a participant, on their side, of a conversation that is not blocked.
            let participant = m.acting_for.map_or_else(|| m.sender_id.clone(), |b| b.to_hex());
            // A customer: the direct conversation's, or a member of the group.
            let member = if m.sender_side == Side::Customer {
                " OR EXISTS (SELECT 1 FROM group_members g WHERE g.conversation = ?1 AND g.customer = ?2)"
            } else {
                ""
            };
            let allowed = tx
                .query_row(
                    &format!(
                        "SELECT 1 FROM conversations WHERE id = ?1 AND ({party_col} = ?2{member}) AND status != 'blocked'"
                    ),
                    [&conv_id, &participant],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !allowed {
                return Ok(None);
            }
            if let Some(cmid) = &m.client_message_id {
                let existing = tx
                    .query_row(
                        &format!(
                            "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ?1 AND client_message_id = ?2"
                        ),
                        [&conv_id, cmid],
                        msg_row,
                    )
                    .optional()?;
                if let Some(existing) = existing {
                    return Ok(Some(Appended::Existing(existing)));
                }
            }
            let (unread_col, _) = side_cols(m.sender_side.other());
            let at = ms(m.created_at);
            // A new message brings the conversation back for its recipient;
            // a customer's also reopens the seed's `status: archived`.
            let (unarchive, reopen) = match m.sender_side {
                Side::Owner => ("archived_customer = 0", ""),
                Side::Customer => {
                    ("archived_owner = 0", ", status = CASE WHEN status = 'archived' THEN 'active' ELSE status END")
                }
            };
            let seq: i64 = if m.quiet() {
                // A note takes its seq and nothing else the customer could see.
                tx.query_row(
                    "UPDATE conversations SET last_seq = last_seq + 1, updated_at = ?2 WHERE id = ?1 RETURNING last_seq",
                    params![conv_id, at],
                    |r| r.get(0),
                )?
            } else {
                tx.query_row(
                    &format!(
                        "UPDATE conversations SET last_seq = last_seq + 1, {unread_col} = {unread_col} + 1, \
                         last_message = ?2, last_message_time = ?3, last_message_seq = last_seq + 1, \
                         activity_at = ?3, updated_at = ?3, {unarchive}{reopen} WHERE id = ?1 RETURNING last_seq"
                    ),
                    params![conv_id, m.content, at],
                    |r| r.get(0),
                )?
            };
            let msg = m.into_stored(seq);
            tx.execute(
                &format!(
                    "INSERT INTO messages ({MSG_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,NULL,0,?12,NULL,?13,?14,?15)"
                ),
                params![
                    msg.id.to_hex(),
                    conv_id,
                    seq,
                    msg.sender_id,
                    msg.sender_side.role_name(),
                    msg.sender_name,
                    msg.content,
                    serde_json::to_string(&msg.attachments).unwrap_or_else(|_| "[]".into()),
                    msg.client_message_id,
                    msg.status.as_str(),
                    at,
                    msg.reply_to.map(|r| r.to_hex()),
                    msg.private,
                    msg.team_role.map(|r| r.as_str()),
                    msg.system
                ],
            )?;
            // The body is built at fan-out, from the message as it is then
            // (`omnibiz_domain::events`), as on MongoDB.
            let evt = events::message_created_id(msg.id);
            record_event(&tx, &evt, HookEvent::MessageCreated, &conv_id, msg.created_at, &serde_json::Value::Null)?;
            tx.commit()?;
            Ok(Some(Appended::Created(msg)))
        })
        .await
    }

    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.with("reading a message", move |c| {
            let m = c
                .query_row(
                    &format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1 AND deleted = 0"),
                    [id.to_hex()],
                    msg_row,
                )
                .optional()?;
            Ok(with_reactions(c, m.into_iter().collect())?.pop())
        })
        .await
    }

    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<Message>> {
        let q = *q;
        self.with("listing messages", move |c| {
            let conv = q.conversation_id.to_hex();
            let lo = q.after.unwrap_or(i64::MIN);
            let hi = q.before.unwrap_or(i64::MAX);
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let order = if q.after.is_some() { "ASC" } else { "DESC" };
            let notes = if q.include_private { "" } else { "AND private = 0" };
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND seq < ?3 {notes} \
                 ORDER BY seq {order} LIMIT ?4"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut out: Vec<Message> =
                stmt.query_map(params![conv, lo, hi, limit], msg_row)?.collect::<Result<_, _>>()?;
            if q.after.is_none() {
                out.reverse();
            }
            with_reactions(c, out)
        })
        .await
    }

    async fn mark_read(&self, id: ConversationId, reader: Side, up_to: i64) -> StoreResult<ReadOutcome> {
        self.with("marking messages read", move |c| {
            let tx = c.transaction()?;
            let conv = id.to_hex();
            let (unread_col, read_col) = side_cols(reader);
            let other = reader.other().role_name();
            let before: i64 =
                tx.query_row(&format!("SELECT {read_col} FROM conversations WHERE id = ?1"), [&conv], |r| r.get(0))?;
            tx.execute(
                "UPDATE messages SET status = 'read' WHERE conversation_id = ?1 AND sender_role = ?2 \
                 AND seq <= ?3 AND status != 'read'",
                params![conv, other, up_to],
            )?;
            let read_seq: i64 = tx.query_row(
                &format!(
                    "UPDATE conversations SET {read_col} = MAX({read_col}, ?2) WHERE id = ?1 RETURNING {read_col}"
                ),
                params![conv, up_to],
                |r| r.get(0),
            )?;
            let unread: i64 = tx.query_row(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender_role = ?2 AND seq > ?3 AND deleted = 0 \
                 AND private = 0 AND system = 0",
                params![conv, other, read_seq],
                |r| r.get(0),
            )?;
            tx.execute(&format!("UPDATE conversations SET {unread_col} = ?2 WHERE id = ?1"), params![conv, unread])?;
            if read_seq > before {
                let data = events::message_read_data(reader, read_seq);
                record_event(&tx, &events::new_event_id(), HookEvent::MessageRead, &conv, Utc::now(), &data)?;
            }
            tx.commit()?;
            Ok(ReadOutcome { read_seq, unread })
        })
        .await
    }

    async fn mark_delivered(&self, id: MessageId) -> StoreResult<bool> {
        self.with("marking a message delivered", move |c| {
            c.execute("UPDATE messages SET status = 'delivered' WHERE id = ?1 AND status = 'sent'", [id.to_hex()])
                .map(|n| n == 1)
        })
        .await
    }

    async fn edit_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        content: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let content = content.to_owned();
        self.with("editing a message", move |c| {
            let tx = c.transaction()?;
            let m = tx
                .query_row(
                    &format!(
                        "UPDATE messages SET content = ?2, edited_at = ?3 WHERE id = ?1 AND conversation_id = ?4 AND deleted = 0 \
                         RETURNING {MSG_COLS}"
                    ),
                    params![id.to_hex(), content, ms(at), conversation.to_hex()],
                    msg_row,
                )
                .optional()?;
            if let Some(m) = &m {
                tx.execute(
                    "UPDATE conversations SET last_message = ?2 WHERE id = ?1 AND last_message_seq = ?3",
                    params![m.conversation_id.to_hex(), m.content, m.seq],
                )?;
                let kind = HookEvent::MessageUpdated;
                let data = events::change_data(kind, m.id, m.conversation_id, Some(&m.content), at);
                let conv = m.conversation_id.to_hex();
                record_event(&tx, &events::change_event_id(kind, m.id, at), kind, &conv, at, &data)?;
            }
            tx.commit()?;
            Ok(m)
        })
        .await
    }

    async fn delete_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        self.with("deleting a message", move |c| {
            let tx = c.transaction()?;
            let m = tx
                .query_row(
                    &format!(
                        "UPDATE messages SET content = '', attachments = '[]', deleted = 1, edited_at = ?2 \
                         WHERE id = ?1 AND conversation_id = ?3 AND deleted = 0 RETURNING {MSG_COLS}"
                    ),
                    params![id.to_hex(), ms(at), conversation.to_hex()],
                    msg_row,
                )
                .optional()?;
            if let Some(m) = &m {
                // What is left of a deleted message carries no reactions either.
                tx.execute("DELETE FROM reactions WHERE message_id = ?1", [m.id.to_hex()])?;
                let (owner_unread, _) = side_cols(Side::Owner);
                let (customer_unread, _) = side_cols(Side::Customer);
                // An unread message that is deleted no longer counts as unread.
                tx.execute(
                    &format!(
                        "UPDATE conversations SET \
                           last_message = CASE WHEN last_message_seq = ?2 THEN ?3 ELSE last_message END, \
                           {owner_unread} = CASE WHEN ?4 = 'customer' AND read_seq_owner < ?2 \
                             THEN MAX({owner_unread} - 1, 0) ELSE {owner_unread} END, \
                           {customer_unread} = CASE WHEN ?4 <> 'customer' AND read_seq_customer < ?2 \
                             THEN MAX({customer_unread} - 1, 0) ELSE {customer_unread} END \
                         WHERE id = ?1"
                    ),
                    params![m.conversation_id.to_hex(), m.seq, DELETED_PREVIEW, m.sender_side.role_name()],
                )?;
                let kind = HookEvent::MessageDeleted;
                let data = events::change_data(kind, m.id, m.conversation_id, None, at);
                let conv = m.conversation_id.to_hex();
                record_event(&tx, &events::change_event_id(kind, m.id, at), kind, &conv, at, &data)?;
            }
            tx.commit()?;
            Ok(m)
        })
        .await
    }

    async fn set_link_preview(&self, id: MessageId, preview: &LinkPreview) -> StoreResult<Option<Message>> {
        let json = serde_json::to_string(preview).unwrap_or_default();
        self.with("storing a link preview", move |c| {
            let m = c
                .query_row(
                    &format!(
                        "UPDATE messages SET link_preview = ?2 WHERE id = ?1 AND deleted = 0 RETURNING {MSG_COLS}"
                    ),
                    params![id.to_hex(), json],
                    msg_row,
                )
                .optional()?;
            Ok(with_reactions(c, m.into_iter().collect())?.pop())
        })
        .await
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
        let emoji = emoji.to_owned();
        self.with("reacting to a message", move |c| {
            let tx = c.transaction()?;
            let m = tx
                .query_row(
                    &format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1 AND conversation_id = ?2 AND deleted = 0"),
                    params![id.to_hex(), conversation.to_hex()],
                    msg_row,
                )
                .optional()?;
            let Some(m) = m else { return Ok(None) };
            let who = by.oid().to_hex();
            let changed = if add {
                tx.execute(
                    "INSERT OR IGNORE INTO reactions (message_id, emoji, by_id, side, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id.to_hex(), emoji, who, by.side().role_name(), ms(at)],
                )?
            } else {
                tx.execute(
                    "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND by_id = ?3",
                    params![id.to_hex(), emoji, who],
                )?
            } == 1;
            if changed {
                let data = events::reaction_data(m.id, m.conversation_id, &emoji, by, add, at);
                let conv = m.conversation_id.to_hex();
                record_event(&tx, &events::reaction_event_id(m.id, at), HookEvent::MessageReaction, &conv, at, &data)?;
            }
            let m = with_reactions(&tx, vec![m])?.pop();
            tx.commit()?;
            Ok(m.map(|m| (m, changed)))
        })
        .await
    }

    async fn search_messages(
        &self,
        party: Party,
        query: &SearchQuery,
        before: Option<(DateTime<Utc>, MessageId)>,
        limit: usize,
    ) -> StoreResult<Vec<Message>> {
        // Every term as an FTS5 string (its words are letters and digits only,
        // so nothing needs escaping); the last word of each is a prefix.
        let fts: Vec<String> = query.terms.iter().map(|t| format!("\"{}\" *", t.words().join(" "))).collect();
        let fts = fts.join(" AND ");
        // A customer's search never reaches the business's internal notes;
        // it covers their direct conversation and their groups.
        let (col, who, notes) = match party {
            Party::Owner(u) => ("business_owner_id = ?2", u.to_hex(), ""),
            Party::Customer(c) => (
                "customer_id = ?2 OR c.id IN (SELECT conversation FROM group_members WHERE customer = ?2)",
                c.to_hex(),
                "AND m.private = 0",
            ),
        };
        let cols: String = MSG_COLS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ");
        self.with("searching messages", move |c| {
            let (at, id) = before.map_or((i64::MAX, String::new()), |(t, id)| (ms(t), id.to_hex()));
            let sql = format!(
                "SELECT {cols} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
                 JOIN conversations c ON c.id = m.conversation_id \
                 WHERE messages_fts MATCH ?1 AND (c.{col}) AND m.deleted = 0 {notes} \
                   AND (m.created_at < ?3 OR (m.created_at = ?3 AND m.id < ?4)) \
                 ORDER BY m.created_at DESC, m.id DESC LIMIT ?5"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![fts, who, at, id, i64::try_from(limit).unwrap_or(i64::MAX)], msg_row)?;
            with_reactions(c, rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
