//! Embedded store on one SQLite file (WAL mode).
//!
//! One connection behind a `std::sync::Mutex`, used only inside
//! `spawn_blocking` and never held across an `.await`. Every write is a single
//! transaction, which is what makes `seq` assignment and create-or-get atomic.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    Appended, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery, NewMessage, Participants, Party,
    ReadOutcome, Store, StoreError, StoreResult,
};
use crate::domain::{
    Conversation, ConversationId, ConversationStatus, Customer, CustomerId, Message, MessageId, MessageStatus, PerSide,
    Priority, Side, User, UserId, UserRole,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT,
    role TEXT NOT NULL, business_name TEXT
);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT,
    invited_by TEXT NOT NULL, total_orders INTEGER NOT NULL DEFAULT 0,
    total_spent REAL NOT NULL DEFAULT 0, last_order_date INTEGER, created_at INTEGER NOT NULL,
    last_login INTEGER
);
CREATE INDEX IF NOT EXISTS customers_by_owner ON customers (invited_by, id DESC);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, business_owner_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    status TEXT NOT NULL, tags TEXT NOT NULL, priority TEXT NOT NULL,
    last_message TEXT, last_message_time INTEGER, last_message_seq INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    unread_owner INTEGER NOT NULL DEFAULT 0, unread_customer INTEGER NOT NULL DEFAULT 0,
    read_seq_owner INTEGER NOT NULL DEFAULT 0, read_seq_customer INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, activity_at INTEGER NOT NULL,
    UNIQUE (business_owner_id, customer_id)
);
CREATE INDEX IF NOT EXISTS conversations_owner_activity ON conversations (business_owner_id, activity_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_customer_activity ON conversations (customer_id, activity_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL, sender_role TEXT NOT NULL, sender_name TEXT NOT NULL,
    content TEXT NOT NULL, attachments TEXT NOT NULL, client_message_id TEXT,
    status TEXT NOT NULL, created_at INTEGER NOT NULL,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_message_id)
);
"#;

const CONV_COLS: &str = "id, business_owner_id, customer_id, status, tags, priority, last_message, \
    last_message_time, last_message_seq, last_seq, unread_owner, unread_customer, read_seq_owner, \
    read_seq_customer, created_at, updated_at";
const MSG_COLS: &str = "id, conversation_id, seq, sender_id, sender_role, sender_name, content, attachments, \
    client_message_id, status, created_at";
const CUST_COLS: &str =
    "id, name, email, phone, invited_by, total_orders, total_spent, last_order_date, created_at, last_login";

/// The embedded store. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// Brings a file written by an earlier release up to the current schema.
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let has_last_login =
        conn.prepare("SELECT 1 FROM pragma_table_info('customers') WHERE name = 'last_login'")?.exists([])?;
    if !has_last_login {
        conn.execute("ALTER TABLE customers ADD COLUMN last_login INTEGER", [])?;
    }
    Ok(())
}

/// Reads a stored id column, reporting corruption instead of panicking.
fn id<T: std::str::FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|_| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, "bad id".into()))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

fn conv_row(row: &Row<'_>) -> rusqlite::Result<Conversation> {
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
    })
}

fn msg_row(row: &Row<'_>) -> rusqlite::Result<Message> {
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
    })
}

fn cust_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
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

fn like_pattern(q: &str) -> String {
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn side_cols(side: Side) -> (&'static str, &'static str) {
    match side {
        Side::Owner => ("unread_owner", "read_seq_owner"),
        Side::Customer => ("unread_customer", "read_seq_customer"),
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database file and its schema.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> anyhow::Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL").context("enabling WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        upgrade(&conn).context("upgrading the schema")?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T, F>(&self, what: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; the transaction rolled back, so carry on.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .context(what)?
        .context(what)
        .map_err(|e| {
            metrics::counter!("store_errors_total", "backend" => "sqlite").increment(1);
            StoreError::Other(e)
        })
    }
}

fn find_conversation(conn: &Connection, id: &str) -> rusqlite::Result<Option<Conversation>> {
    conn.query_row(&format!("SELECT {CONV_COLS} FROM conversations WHERE id = ?1"), [id], conv_row).optional()
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with("pinging sqlite", |c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let u = user.clone();
        self.with("inserting a user", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO users (id, name, email, phone, role, business_name) VALUES (?1,?2,?3,?4,?5,?6)",
                params![u.id.to_hex(), u.name, u.email, u.phone, u.role.as_str(), u.business_name],
            )
            .map(drop)
        })
        .await
    }

    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()> {
        let cs = customers.to_vec();
        self.with("inserting customers", move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(&format!(
                    "INSERT OR REPLACE INTO customers ({CUST_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
                ))?;
                for x in &cs {
                    stmt.execute(params![
                        x.id.to_hex(),
                        x.name,
                        x.email,
                        x.phone,
                        x.invited_by.to_hex(),
                        x.total_orders,
                        x.total_spent,
                        x.last_order_date.map(ms),
                        ms(x.created_at),
                        x.last_login.map(ms)
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.with("reading a user", move |c| {
            c.query_row(
                "SELECT id, name, email, phone, role, business_name FROM users WHERE id = ?1",
                [id.to_hex()],
                |r| {
                    let role: String = r.get(4)?;
                    Ok(User {
                        id: self::id(r, 0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        phone: r.get(3)?,
                        role: UserRole::parse(&role),
                        business_name: r.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>> {
        self.with("reading a customer", move |c| {
            c.query_row(&format!("SELECT {CUST_COLS} FROM customers WHERE id = ?1"), [id.to_hex()], cust_row).optional()
        })
        .await
    }

    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_hex()).collect();
        self.with("reading customers", move |c| {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!("SELECT {CUST_COLS} FROM customers WHERE id IN ({})", placeholders(ids.len()));
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(ids.iter()), cust_row)?.collect()
        })
        .await
    }

    async fn list_customers(&self, q: &CustomerQuery) -> StoreResult<Vec<Customer>> {
        let q = q.clone();
        self.with("listing customers", move |c| {
            let mut sql = format!("SELECT {CUST_COLS} FROM customers WHERE invited_by = ?1");
            let mut args: Vec<String> = vec![q.owner.to_hex()];
            if let Some(before) = q.before {
                args.push(before.to_hex());
                sql += &format!(" AND id < ?{}", args.len());
            }
            if let Some(term) = &q.q {
                args.push(like_pattern(term));
                let n = args.len();
                sql += &format!(
                    " AND (name LIKE ?{n} ESCAPE '\\' OR email LIKE ?{n} ESCAPE '\\' OR phone LIKE ?{n} ESCAPE '\\')"
                );
            }
            sql += &format!(" ORDER BY id DESC LIMIT {}", q.limit);
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), cust_row)?.collect()
        })
        .await
    }

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
            let (col, who) = match q.party {
                Party::Owner(id) => ("business_owner_id", id.to_hex()),
                Party::Customer(id) => ("customer_id", id.to_hex()),
            };
            let mut sql = format!("SELECT {CONV_COLS} FROM conversations WHERE {col} = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![who.into()];
            if let Some(cur) = q.before {
                args.push(ms(cur.at).into());
                args.push(cur.id.to_hex().into());
                let (a, b) = (args.len() - 1, args.len());
                sql += &format!(" AND (activity_at < ?{a} OR (activity_at = ?{a} AND id < ?{b}))");
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
            tx.commit()?;
            Ok(conv)
        })
        .await
    }

    async fn append_message(&self, m: NewMessage) -> StoreResult<Appended> {
        self.with("appending a message", move |c| {
            let tx = c.transaction()?;
            let conv_id = m.conversation_id.to_hex();
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
                    return Ok(Appended::Existing(existing));
                }
            }
            let (unread_col, _) = side_cols(m.sender_side.other());
            let at = ms(m.created_at);
            let seq: i64 = tx.query_row(
                &format!(
                    "UPDATE conversations SET last_seq = last_seq + 1, {unread_col} = {unread_col} + 1, \
                     last_message = ?2, last_message_time = ?3, last_message_seq = last_seq + 1, \
                     activity_at = ?3, updated_at = ?3 WHERE id = ?1 RETURNING last_seq"
                ),
                params![conv_id, m.content, at],
                |r| r.get(0),
            )?;
            let msg = m.into_stored(seq);
            tx.execute(
                &format!("INSERT INTO messages ({MSG_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"),
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
                    at
                ],
            )?;
            tx.commit()?;
            Ok(Appended::Created(msg))
        })
        .await
    }

    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.with("reading a message", move |c| {
            c.query_row(&format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1"), [id.to_hex()], msg_row).optional()
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
            let sql = format!(
                "SELECT {MSG_COLS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 AND seq < ?3 \
                 ORDER BY seq {order} LIMIT ?4"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut out: Vec<Message> =
                stmt.query_map(params![conv, lo, hi, limit], msg_row)?.collect::<Result<_, _>>()?;
            if q.after.is_none() {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    async fn mark_read(&self, id: ConversationId, reader: Side, up_to: i64) -> StoreResult<ReadOutcome> {
        self.with("marking messages read", move |c| {
            let tx = c.transaction()?;
            let conv = id.to_hex();
            let (unread_col, read_col) = side_cols(reader);
            let other = reader.other().role_name();
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
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender_role = ?2 AND seq > ?3",
                params![conv, other, read_seq],
                |r| r.get(0),
            )?;
            tx.execute(&format!("UPDATE conversations SET {unread_col} = ?2 WHERE id = ?1"), params![conv, unread])?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_from_before_last_login_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            // The customers table as an earlier release created it.
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE customers (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT,
                    invited_by TEXT NOT NULL, total_orders INTEGER NOT NULL DEFAULT 0,
                    total_spent REAL NOT NULL DEFAULT 0, last_order_date INTEGER, created_at INTEGER NOT NULL);",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(&path).expect("upgraded");
        let owner = UserId::new();
        let login = Utc.timestamp_millis_opt(1_700_000_000_000).single().expect("time");
        let c = Customer {
            id: CustomerId::new(),
            name: "Old".into(),
            email: "old@x.example".into(),
            phone: None,
            invited_by: owner,
            total_orders: 1,
            total_spent: 2.0,
            last_order_date: None,
            last_login: Some(login),
            created_at: login,
        };
        store.insert_customers(std::slice::from_ref(&c)).await.expect("insert");
        let back = store.get_customer(c.id).await.expect("read").expect("found");
        assert_eq!(back.last_login, Some(login));
        drop(store);
        SqliteStore::open(&path).expect("a second open finds nothing to upgrade");
    }
}
