//! Rows to and from the domain's types, and the outbox row written with a change.

use chrono::{DateTime, TimeZone, Utc};
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, Endpoint, HookEvent, Target};
use omnibiz_domain::{
    Conversation, ConversationStatus, Customer, Message, MessageStatus, PerSide, Priority, QuickReply, Shortcut, Side,
    Upload,
};
use rusqlite::{Row, params};

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// Reads a stored id column, reporting corruption instead of panicking.
pub(super) fn id<T: std::str::FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|_| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, "bad id".into()))
}

pub(super) fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

pub(super) fn conv_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
    let status: String = row.get(3)?;
    let priority: String = row.get(5)?;
    Ok(Conversation {
        id: id(row, 0)?,
        business_owner_id: id(row, 1)?,
        customer_id: id(row, 2)?,
        status: ConversationStatus::parse(&status).unwrap_or(ConversationStatus::Active),
        tags: json_col(row, 4)?,
        priority: Priority::parse(&priority).unwrap_or(Priority::Normal),
        last_message: row.get(6)?,
        last_message_time: row.get::<_, Option<i64>>(7)?.map(from_ms),
        last_message_seq: row.get(8)?,
        last_seq: row.get(9)?,
        unread: PerSide { owner: row.get(10)?, customer: row.get(11)? },
        read_seq: PerSide { owner: row.get(12)?, customer: row.get(13)? },
        created_at: from_ms(row.get(14)?),
        updated_at: from_ms(row.get(15)?),
        archived: omnibiz_domain::Archived { owner: row.get(16)?, customer: row.get(17)? },
        assignee: row.get::<_, Option<String>>(18)?.and_then(|s| s.parse().ok()),
        group: match row.get::<_, Option<String>>(19)? {
            Some(title) => Some(omnibiz_domain::Group {
                title,
                members: row
                    .get::<_, Option<String>>(20)?
                    .and_then(|m| serde_json::from_str::<Vec<String>>(&m).ok())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            }),
            None => None,
        },
    })
}

pub(super) fn msg_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let role: String = row.get(4)?;
    let status: String = row.get(9)?;
    Ok(Message {
        id: id(row, 0)?,
        conversation_id: id(row, 1)?,
        seq: row.get(2)?,
        sender_id: row.get(3)?,
        sender_side: Side::from_role_name(&role).unwrap_or(Side::Customer),
        sender_name: row.get(5)?,
        content: row.get(6)?,
        attachments: json_col(row, 7)?,
        client_message_id: row.get(8)?,
        status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Sent),
        created_at: from_ms(row.get(10)?),
        edited_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
        deleted: row.get(12)?,
        // Filled in by `with_reactions` (another table).
        reactions: Vec::new(),
        reply_to: row.get::<_, Option<String>>(13)?.and_then(|s| s.parse().ok()),
        link_preview: row.get::<_, Option<String>>(14)?.and_then(|s| serde_json::from_str(&s).ok()),
        private: row.get(15)?,
        team_role: row.get::<_, Option<String>>(16)?.and_then(|s| omnibiz_domain::TeamRole::parse(&s)),
        system: row.get(17)?,
    })
}

/// Fills in the reactions of `messages` from the `reactions` table.
pub(super) fn with_reactions(c: &rusqlite::Connection, mut messages: Vec<Message>) -> rusqlite::Result<Vec<Message>> {
    if messages.is_empty() {
        return Ok(messages);
    }
    let ids: Vec<String> = messages.iter().map(|m| m.id.to_hex()).collect();
    let sql = format!(
        "SELECT message_id, emoji, by_id, side, at FROM reactions WHERE message_id IN ({}) ORDER BY at, rowid",
        placeholders(ids.len())
    );
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(ids.iter()), |r| {
        let side: String = r.get(3)?;
        let by: String = r.get(2)?;
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, by, side, r.get::<_, i64>(4)?))
    })?;
    for row in rows {
        let (mid, emoji, by, side, at) = row?;
        let Ok(oid) = by.parse::<omnibiz_domain::ObjectId>() else { continue };
        let side = Side::from_role_name(&side).unwrap_or(Side::Customer);
        if let Some(m) = messages.iter_mut().find(|m| m.id.to_hex() == mid) {
            m.reactions.push(omnibiz_domain::Reaction {
                emoji,
                by: omnibiz_domain::Party::of(side, oid),
                at: from_ms(at),
            });
        }
    }
    Ok(messages)
}

pub(super) const REPLY_COLS: &str = "id, owner, shortcut, content, created_at, updated_at";

pub(super) fn reply_row(row: &Row<'_>) -> rusqlite::Result<QuickReply> {
    let shortcut: String = row.get(2)?;
    Ok(QuickReply {
        id: id(row, 0)?,
        owner: id(row, 1)?,
        shortcut: Shortcut::parse(&shortcut).map_err(|_| bad(2, "shortcut"))?,
        content: row.get(3)?,
        created_at: from_ms(row.get(4)?),
        updated_at: from_ms(row.get(5)?),
    })
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

pub(super) fn upload_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
    let role: String = row.get(3)?;
    Ok(Upload {
        id: id(row, 0)?,
        conversation_id: id(row, 1)?,
        uploader_id: row.get(2)?,
        uploader_side: Side::from_role_name(&role).ok_or_else(|| bad(3, "uploader_role"))?,
        name: row.get(4)?,
        mime_type: row.get(5)?,
        size: row.get::<_, Option<i64>>(6)?.map(|n| u64::try_from(n).unwrap_or(0)),
        has_thumbnail: row.get(7)?,
        created_at: from_ms(row.get(8)?),
        claim: row.get(9)?,
        message_id: row.get::<_, Option<String>>(10)?.and_then(|s| s.parse().ok()),
        confirmed: row.get(11)?,
        audio: match row.get::<_, Option<String>>(12)? {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(12, rusqlite::types::Type::Text, Box::new(e))
            })?),
            None => None,
        },
    })
}

pub(super) fn cust_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: id(row, 0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        phone: row.get(3)?,
        invited_by: id(row, 4)?,
        total_orders: row.get(5)?,
        total_spent: row.get(6)?,
        last_order_date: row.get::<_, Option<i64>>(7)?.map(from_ms),
        created_at: from_ms(row.get(8)?),
        last_login: row.get::<_, Option<i64>>(9)?.map(from_ms),
    })
}

pub(super) fn like_pattern(q: &str) -> String {
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

pub(super) fn side_cols(side: Side) -> (&'static str, &'static str) {
    match side {
        Side::Owner => ("unread_owner", "read_seq_owner"),
        Side::Customer => ("unread_customer", "read_seq_customer"),
    }
}

/// Records a webhook outbox event inside the caller's transaction.
pub(super) fn record_event(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    kind: HookEvent,
    conv: &str,
    at: DateTime<Utc>,
    data: &serde_json::Value,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO hook_events (id, kind, conversation_id, at, data) VALUES (?1,?2,?3,?4,?5)",
        params![id, kind.as_str(), conv, ms(at), data.to_string()],
    )?;
    Ok(())
}

pub(super) fn bad(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, what.to_owned().into())
}

pub(super) fn endpoint_row(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let events: Vec<String> = json_col(row, 4)?;
    Ok(Endpoint {
        id: id(row, 0)?,
        owner: id(row, 1)?,
        url: row.get(2)?,
        secret: row.get(3)?,
        events: events.iter().filter_map(|e| HookEvent::parse(e)).collect(),
        description: row.get(5)?,
        enabled: row.get::<_, i64>(6)? != 0,
        disabled_reason: row.get(7)?,
        failure_streak: row.get(8)?,
        created_at: from_ms(row.get(9)?),
        updated_at: from_ms(row.get(10)?),
    })
}

pub(super) fn delivery_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = row.get(4)?;
    let status: String = row.get(7)?;
    let check: Option<String> = row.get(13)?;
    let channel: String = row.get(14)?;
    Ok(Delivery {
        id: row.get(0)?,
        target: Target::from_parts(Some(&channel), id(row, 1)?).ok_or_else(|| bad(14, "unknown delivery channel"))?,
        owner: id(row, 2)?,
        event_id: row.get(3)?,
        kind: HookEvent::parse(&kind).ok_or_else(|| bad(4, "unknown event kind"))?,
        conversation: id(row, 5)?,
        body: row.get(6)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad(7, "unknown delivery status"))?,
        attempts: row.get(8)?,
        next_at: from_ms(row.get(9)?),
        created_at: from_ms(row.get(10)?),
        updated_at: from_ms(row.get(11)?),
        log: json_col(row, 12)?,
        unread_check: check.and_then(|c| serde_json::from_str(&c).ok()),
    })
}
