//! [`ConversationStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::webhook::HookEvent;
use omnibiz_domain::{Conversation, ConversationId, ConversationPatch, CustomerId, Party, Side, UserId, events};
use rusqlite::{OptionalExtension, params};

use super::codec::*;
use super::schema::*;
use super::{SqliteStore, find_conversation};
use crate::prelude::*;
use crate::{
    Assigned, AssignmentCounts, ConversationCounts, ConversationQuery, MemberRead, Participants, ReadOutcome,
    StoreResult, TeamReadFrom,
};

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn get_or_create_conversation(
        &self,
        who: &Participants,
        now: DateTime<Utc>,
    ) -> StoreResult<(Conversation, bool)> {
        let (owner, customer) = (who.owner, who.customer);
        self.with("creating a conversation", move |c| {
            let tx = c.transaction()?;
            let fresh = Conversation::new(owner, customer, now);
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO conversations (id, business_owner_id, customer_id, status, tags, priority, \
                 created_at, updated_at, activity_at) VALUES (?1,?2,?3,?4,'[]',?5,?6,?6,?6)",
                params![
                    fresh.id.to_hex(),
                    owner.to_hex(),
                    customer.to_hex(),
                    fresh.status.as_str(),
                    fresh.priority.as_str(),
                    ms(now)
                ],
            )?;
            let conv = tx.query_row(
                &format!("SELECT {CONV_COLS} FROM conversations WHERE business_owner_id = ?1 AND customer_id = ?2"),
                [owner.to_hex(), customer.to_hex()],
                conv_row,
            )?;
            if inserted == 1 {
                let data = serde_json::json!({});
                record_event(
                    &tx,
                    &events::new_event_id(),
                    HookEvent::ConversationCreated,
                    &conv.id.to_hex(),
                    now,
                    &data,
                )?;
            }
            tx.commit()?;
            Ok((conv, inserted == 1))
        })
        .await
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        self.with("reading a conversation", move |c| find_conversation(c, &id.to_hex())).await
    }

    async fn list_conversations(&self, q: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        let q = q.clone();
        self.with("listing conversations", move |c| {
            let mut sql = format!("SELECT {CONV_COLS} FROM conversations WHERE {}", party_clause(q.party));
            let who = q.party.oid().to_hex();
            let mut args: Vec<rusqlite::types::Value> = vec![who.into()];
            if let Some(cur) = q.before {
                args.push(ms(cur.at).into());
                args.push(cur.id.to_hex().into());
                let (a, b) = (args.len() - 1, args.len());
                sql += &format!(" AND (activity_at < ?{a} OR (activity_at = ?{a} AND id < ?{b}))");
            }
            if let Some(archived) = q.archived {
                sql += " AND ";
                sql += archived_clause(q.party.side(), archived);
            }
            match q.assigned {
                Assigned::Any => {}
                Assigned::Unassigned => sql += " AND assignee IS NULL",
                Assigned::To(u) | Assigned::ToOrNobody(u) => {
                    args.push(u.to_hex().into());
                    let n = args.len();
                    sql += &if matches!(q.assigned, Assigned::To(_)) {
                        format!(" AND assignee = ?{n}")
                    } else {
                        format!(" AND (assignee = ?{n} OR assignee IS NULL)")
                    };
                }
            }
            if let Some(customers) = &q.customers {
                if customers.is_empty() {
                    return Ok(Vec::new());
                }
                let start = args.len() + 1;
                let ph: Vec<String> = (start..start + customers.len()).map(|i| format!("?{i}")).collect();
                args.extend(customers.iter().map(|c| c.to_hex().into()));
                sql += &format!(" AND customer_id IN ({})", ph.join(","));
            }
            sql += &format!(" ORDER BY activity_at DESC, id DESC LIMIT {}", q.limit);
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), conv_row)?.collect()
        })
        .await
    }

    async fn conversations_with(&self, owner: UserId, customers: &[CustomerId]) -> StoreResult<Vec<Conversation>> {
        let mut args: Vec<String> = vec![owner.to_hex()];
        args.extend(customers.iter().map(|c| c.to_hex()));
        self.with("reading conversations of customers", move |c| {
            if args.len() == 1 {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT {CONV_COLS} FROM conversations WHERE business_owner_id = ? AND customer_id IN ({})",
                placeholders(args.len() - 1)
            );
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), conv_row)?.collect()
        })
        .await
    }

    async fn set_archived(
        &self,
        id: ConversationId,
        side: Side,
        archived: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        self.with("archiving a conversation", move |c| {
            let tx = c.transaction()?;
            let id = id.to_hex();
            let col = if side == Side::Owner { "archived_owner" } else { "archived_customer" };
            tx.execute(
                &format!("UPDATE conversations SET {col} = ?2, updated_at = ?3 WHERE id = ?1"),
                params![id, archived, ms(now)],
            )?;
            if side == Side::Owner && !archived {
                // Unarchiving reopens what the seed's status had archived.
                tx.execute("UPDATE conversations SET status = 'active' WHERE id = ?1 AND status = 'archived'", [&id])?;
            }
            let conv = find_conversation(&tx, &id)?;
            tx.commit()?;
            Ok(conv)
        })
        .await
    }

    async fn conversation_counts(&self, party: Party) -> StoreResult<ConversationCounts> {
        self.with("counting conversations", move |c| {
            let archived = archived_clause(party.side(), true);
            let mine = party_clause(party);
            let (all, arch): (i64, i64) = c.query_row(
                &format!("SELECT COUNT(*), COALESCE(SUM(CASE WHEN {archived} THEN 1 ELSE 0 END), 0) FROM conversations WHERE {mine}"),
                [party.oid().to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (all, arch) = (u64::try_from(all).unwrap_or(0), u64::try_from(arch).unwrap_or(0));
            Ok(ConversationCounts { active: all - arch.min(all), archived: arch })
        })
        .await
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let patch = patch.clone();
        self.with("updating a conversation", move |c| {
            let tx = c.transaction()?;
            let id = id.to_hex();
            if let Some(s) = patch.status {
                tx.execute("UPDATE conversations SET status = ?2 WHERE id = ?1", params![id, s.as_str()])?;
            }
            if let Some(p) = patch.priority {
                tx.execute("UPDATE conversations SET priority = ?2 WHERE id = ?1", params![id, p.as_str()])?;
            }
            if let Some(t) = &patch.tags {
                let tags = serde_json::to_string(t).unwrap_or_else(|_| "[]".into());
                tx.execute("UPDATE conversations SET tags = ?2 WHERE id = ?1", params![id, tags])?;
            }
            tx.execute("UPDATE conversations SET updated_at = ?2 WHERE id = ?1", params![id, ms(now)])?;
            let conv = find_conversation(&tx, &id)?;
            if conv.is_some() {
                let data = events::conversation_updated_data(&patch);
                record_event(&tx, &events::new_event_id(), HookEvent::ConversationUpdated, &id, now, &data)?;
            }
            tx.commit()?;
            Ok(conv)
        })
        .await
    }

    async fn set_assignee(
        &self,
        id: ConversationId,
        assignee: Option<UserId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        self.with("assigning a conversation", move |c| {
            let id = id.to_hex();
            c.execute(
                "UPDATE conversations SET assignee = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, assignee.map(|a| a.to_hex()), ms(now)],
            )?;
            find_conversation(c, &id)
        })
        .await
    }

    async fn claim_unassigned(
        &self,
        id: ConversationId,
        assignee: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        self.with("assigning an unassigned conversation", move |c| {
            let id = id.to_hex();
            let n = c.execute(
                "UPDATE conversations SET assignee = ?2, updated_at = ?3 WHERE id = ?1 AND assignee IS NULL",
                params![id, assignee.to_hex(), ms(now)],
            )?;
            if n == 0 {
                return Ok(None);
            }
            find_conversation(c, &id)
        })
        .await
    }

    async fn assignment_counts(&self, business: UserId, me: UserId) -> StoreResult<AssignmentCounts> {
        self.with("counting assignments", move |c| {
            let open = archived_clause(Side::Owner, false);
            let (all, mine, unassigned): (i64, i64, i64) = c.query_row(
                &format!(
                    "SELECT COUNT(*), COALESCE(SUM(assignee = ?2), 0), COALESCE(SUM(assignee IS NULL), 0) \
                     FROM conversations WHERE business_owner_id = ?1 AND {open}"
                ),
                [business.to_hex(), me.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(AssignmentCounts { all: n(all), mine: n(mine), unassigned: n(unassigned) })
        })
        .await
    }

    async fn create_group(&self, group: &Conversation) -> StoreResult<()> {
        let g = group.clone();
        self.with("creating a group", move |c| {
            let tx = c.transaction()?;
            let info = g.group.as_ref().expect("a group");
            let members: Vec<String> = info.members.iter().map(|m| m.to_hex()).collect();
            tx.execute(
                "INSERT INTO conversations (id, business_owner_id, customer_id, status, tags, priority, \
                 created_at, updated_at, activity_at, title, members) VALUES (?1,?2,?3,?4,'[]',?5,?6,?6,?6,?7,?8)",
                params![
                    g.id.to_hex(),
                    g.business_owner_id.to_hex(),
                    g.customer_id.to_hex(),
                    g.status.as_str(),
                    g.priority.as_str(),
                    ms(g.created_at),
                    info.title,
                    serde_json::to_string(&members).unwrap_or_else(|_| "[]".into())
                ],
            )?;
            for m in &members {
                tx.execute(
                    "INSERT INTO group_members (conversation, customer, joined_at) VALUES (?1, ?2, ?3)",
                    params![g.id.to_hex(), m, ms(g.created_at)],
                )?;
            }
            let data = serde_json::json!({});
            record_event(
                &tx,
                &events::new_event_id(),
                HookEvent::ConversationCreated,
                &g.id.to_hex(),
                g.created_at,
                &data,
            )?;
            tx.commit()
        })
        .await
    }

    async fn set_group_members(
        &self,
        id: ConversationId,
        members: &[CustomerId],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let members: Vec<String> = members.iter().map(CustomerId::to_hex).collect();
        self.with("changing a group's members", move |c| {
            let tx = c.transaction()?;
            let id = id.to_hex();
            let n = tx.execute(
                "UPDATE conversations SET members = ?2, updated_at = ?3 WHERE id = ?1 AND title IS NOT NULL",
                params![id, serde_json::to_string(&members).unwrap_or_else(|_| "[]".into()), ms(now)],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let current: Vec<String> = tx
                .prepare("SELECT customer FROM group_members WHERE conversation = ?1")?
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for gone in current.iter().filter(|c| !members.contains(c)) {
                tx.execute("DELETE FROM group_members WHERE conversation = ?1 AND customer = ?2", params![id, gone])?;
            }
            for new in members.iter().filter(|m| !current.contains(m)) {
                tx.execute(
                    "INSERT INTO group_members (conversation, customer, joined_at) VALUES (?1, ?2, ?3)",
                    params![id, new, ms(now)],
                )?;
            }
            let conv = find_conversation(&tx, &id)?;
            tx.commit()?;
            Ok(conv)
        })
        .await
    }

    async fn group_reads(&self, id: ConversationId) -> StoreResult<Vec<MemberRead>> {
        self.with("reading a group's read positions", move |c| {
            c.prepare(
                "SELECT customer, read_seq, read_at FROM group_members \
                 WHERE conversation = ?1 AND read_at IS NOT NULL ORDER BY joined_at, customer",
            )?
            .query_map([id.to_hex()], |r| {
                Ok(MemberRead { customer: self::id(r, 0)?, read_seq: r.get(1)?, at: from_ms(r.get(2)?) })
            })?
            .collect()
        })
        .await
    }

    async fn mark_member_read(
        &self,
        id: ConversationId,
        customer: CustomerId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome> {
        self.with("marking a group read", move |c| {
            let (conv, me) = (id.to_hex(), customer.to_hex());
            c.execute(
                "UPDATE group_members SET read_seq = ?3, read_at = ?4 \
                 WHERE conversation = ?1 AND customer = ?2 AND read_seq < ?3",
                params![conv, me, up_to, ms(now)],
            )?;
            let read_seq: i64 = c
                .query_row(
                    "SELECT read_seq FROM group_members WHERE conversation = ?1 AND customer = ?2",
                    params![conv, me],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let unread: i64 = c.query_row(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND sender_id != ?3 \
                 AND deleted = 0 AND private = 0 AND system = 0",
                params![conv, read_seq, me],
                |r| r.get(0),
            )?;
            Ok(ReadOutcome { read_seq, unread })
        })
        .await
    }

    async fn mark_team_read(
        &self,
        id: ConversationId,
        user: UserId,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ReadOutcome> {
        self.with("marking a conversation read for a team member", move |c| {
            let (conv, me) = (id.to_hex(), user.to_hex());
            if up_to > 0 {
                c.execute(
                    "INSERT INTO team_reads (conversation, user, read_seq, read_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (conversation, user) DO UPDATE SET read_seq = ?3, read_at = ?4 WHERE read_seq < ?3",
                    params![conv, me, up_to, ms(now)],
                )?;
            }
            let read_seq: i64 = c
                .query_row(
                    "SELECT read_seq FROM team_reads WHERE conversation = ?1 AND user = ?2",
                    params![conv, me],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let unread = customers_after(c, &conv, read_seq)?;
            Ok(ReadOutcome { read_seq, unread })
        })
        .await
    }

    async fn team_unread(&self, user: UserId, convs: &[TeamReadFrom]) -> StoreResult<Vec<(ConversationId, i64)>> {
        let convs = convs.to_vec();
        self.with("reading a team member's unread counts", move |c| {
            let me = user.to_hex();
            let mut out = Vec::with_capacity(convs.len());
            // First sight: a position where the business is.
            let mut first = c.prepare_cached(
                "INSERT OR IGNORE INTO team_reads (conversation, user, read_seq, read_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut position =
                c.prepare_cached("SELECT read_seq FROM team_reads WHERE conversation = ?1 AND user = ?2")?;
            for from in convs {
                let conv = from.conversation.to_hex();
                first.execute(params![conv, me, from.start, ms(Utc::now())])?;
                let read_seq: i64 = position.query_row(params![conv, me], |r| r.get(0))?;
                let unread = if read_seq >= from.last_seq { 0 } else { customers_after(c, &conv, read_seq)? };
                out.push((from.conversation, unread));
            }
            Ok(out)
        })
        .await
    }

    async fn forget_team_reads(&self, user: UserId) -> StoreResult<()> {
        self.with("forgetting a team member's read positions", move |c| {
            c.execute("DELETE FROM team_reads WHERE user = ?1", [user.to_hex()])?;
            Ok(())
        })
        .await
    }
}

/// The customers' messages of `conv` above `seq` that count as unread
/// (neither notes, system records nor deleted ones).
fn customers_after(c: &rusqlite::Connection, conv: &str, seq: i64) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND sender_role = ?3 \
         AND deleted = 0 AND private = 0 AND system = 0",
    )?
    .query_row(params![conv, seq, Side::Customer.role_name()], |r| r.get(0))
}

/// The SQL condition for "`?1`'s conversations": the business's, or a
/// customer's direct one and the groups they are in.
pub(super) fn party_clause(party: Party) -> &'static str {
    match party {
        Party::Owner(_) => "business_owner_id = ?1",
        Party::Customer(_) => {
            "(customer_id = ?1 OR id IN (SELECT conversation FROM group_members WHERE customer = ?1))"
        }
    }
}

/// The SQL condition for "archived for `side`" (or not): for the business,
/// its own flag or the seed's `status = 'archived'`.
fn archived_clause(side: Side, archived: bool) -> &'static str {
    match (side, archived) {
        (Side::Owner, true) => "(archived_owner = 1 OR status = 'archived')",
        (Side::Owner, false) => "(archived_owner = 0 AND status != 'archived')",
        (Side::Customer, true) => "archived_customer = 1",
        (Side::Customer, false) => "archived_customer = 0",
    }
}
