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
    Appended, ConversationPatch, ConversationQuery, CustomerQuery, DELETED_PREVIEW, MessageQuery, NewMessage,
    Participants, Party, ReadOutcome, Store, StoreError, StoreResult,
};
use crate::domain::search::SearchQuery;
use crate::domain::{
    Conversation, ConversationId, ConversationStatus, Customer, CustomerId, EndpointId, Message, MessageId,
    MessageStatus, PerSide, Priority, QuickReply, QuickReplyId, Shortcut, Side, UploadId, User, UserId, UserRole,
};
use crate::files::Upload;
use crate::hooks::{Delivery, DeliveryStatus, Endpoint, HookEvent, OutboxEvent, change_data, change_event_id};
use crate::service::views::MessageView;

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
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TABLE IF NOT EXISTS quick_replies (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, shortcut TEXT NOT NULL, content TEXT NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    UNIQUE (owner, shortcut)
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, uploader_id TEXT NOT NULL, uploader_role TEXT NOT NULL,
    name TEXT NOT NULL, mime_type TEXT NOT NULL, size INTEGER, has_thumbnail INTEGER NOT NULL,
    created_at INTEGER NOT NULL, claim TEXT, message_id TEXT, confirmed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_unconfirmed ON uploads (confirmed, created_at);
CREATE TABLE IF NOT EXISTS hook_events (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, conversation_id TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hook_events_at ON hook_events (at);
CREATE TABLE IF NOT EXISTS hook_endpoints (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL,
    description TEXT NOT NULL, enabled INTEGER NOT NULL, disabled_reason TEXT, failure_streak INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hook_endpoints_owner ON hook_endpoints (owner);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, owner TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL,
    conversation_id TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL, lease_until INTEGER, lease_holder TEXT, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, log TEXT NOT NULL, unread_check TEXT
);
CREATE INDEX IF NOT EXISTS hook_deliveries_due ON hook_deliveries (status, next_at);
CREATE INDEX IF NOT EXISTS hook_deliveries_endpoint ON hook_deliveries (endpoint_id, created_at DESC, id DESC);
"#;

const ENDPOINT_COLS: &str = "id, owner, url, secret, events, description, enabled, disabled_reason, failure_streak, \
    created_at, updated_at";
const DELIVERY_COLS: &str = "id, endpoint_id, owner, event_id, kind, conversation_id, body, status, attempts, next_at, \
    created_at, updated_at, log, unread_check";

const CONV_COLS: &str = "id, business_owner_id, customer_id, status, tags, priority, last_message, \
    last_message_time, last_message_seq, last_seq, unread_owner, unread_customer, read_seq_owner, \
    read_seq_customer, created_at, updated_at";
const MSG_COLS: &str = "id, conversation_id, seq, sender_id, sender_role, sender_name, content, attachments, \
    client_message_id, status, created_at, edited_at, deleted";
const UPLOAD_COLS: &str = "id, conversation_id, uploader_id, uploader_role, name, mime_type, size, has_thumbnail, \
    created_at, claim, message_id, confirmed";
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
    let has_edited_at =
        conn.prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'edited_at'")?.exists([])?;
    if !has_edited_at {
        conn.execute("ALTER TABLE messages ADD COLUMN edited_at INTEGER", [])?;
        conn.execute("ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0", [])?;
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
        edited_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
        deleted: row.get(12)?,
    })
}

const REPLY_COLS: &str = "id, owner, shortcut, content, created_at, updated_at";

fn reply_row(row: &Row<'_>) -> rusqlite::Result<QuickReply> {
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

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn upload_row(row: &Row<'_>) -> rusqlite::Result<Upload> {
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

/// Records a webhook outbox event inside the caller's transaction.
fn record_event(
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

fn bad(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, what.to_owned().into())
}

fn endpoint_row(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
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

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = row.get(4)?;
    let status: String = row.get(7)?;
    let check: Option<String> = row.get(13)?;
    Ok(Delivery {
        id: row.get(0)?,
        endpoint: id(row, 1)?,
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
        // Full-text search over message content (FTS5, external content:
        // the text is stored once, in `messages`); built from existing rows
        // the first time, kept in step by triggers after that.
        let had_fts = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'")?
            .exists([])
            .context("reading the schema")?;
        conn.execute_batch(
            "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(content, content='messages', content_rowid='rowid');",
        )
        .context("creating the search index")?;
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        upgrade(&conn).context("upgrading the schema")?;
        if !had_fts {
            conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')", [])
                .context("building the search index")?;
        }
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
            if inserted == 1 {
                let evt = format!("evt_{}", bson::oid::ObjectId::new().to_hex());
                let data = serde_json::json!({});
                record_event(&tx, &evt, HookEvent::ConversationCreated, &conv.id.to_hex(), now, &data)?;
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
            if conv.is_some() {
                // What changed, as on MongoDB (where the event is written with the change, before it is read back).
                let mut data = serde_json::Map::new();
                if let Some(s) = patch.status {
                    data.insert("status".into(), s.as_str().into());
                }
                if let Some(p) = patch.priority {
                    data.insert("priority".into(), p.as_str().into());
                }
                if let Some(t) = &patch.tags {
                    data.insert("tags".into(), t.clone().into());
                }
                let evt = format!("evt_{}", bson::oid::ObjectId::new().to_hex());
                record_event(&tx, &evt, HookEvent::ConversationUpdated, &id, now, &data.into())?;
            }
            tx.commit()?;
            Ok(conv)
        })
        .await
    }

    async fn append_message(&self, m: NewMessage) -> StoreResult<Option<Appended>> {
        self.with("appending a message", move |c| {
            let tx = c.transaction()?;
            let conv_id = m.conversation_id.to_hex();
            let party_col = match m.sender_side {
                Side::Owner => "business_owner_id",
                Side::Customer => "customer_id",
            };
            // Only a participant, on their side, of a conversation that is not blocked.
            let allowed = tx
                .query_row(
                    &format!("SELECT 1 FROM conversations WHERE id = ?1 AND {party_col} = ?2 AND status != 'blocked'"),
                    [&conv_id, &m.sender_id],
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
                &format!("INSERT INTO messages ({MSG_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,NULL,0)"),
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
            let data = serde_json::to_value(MessageView::from(&msg)).unwrap_or_default();
            let evt = format!("msg_{}", msg.id.to_hex());
            record_event(&tx, &evt, HookEvent::MessageCreated, &conv_id, msg.created_at, &data)?;
            tx.commit()?;
            Ok(Some(Appended::Created(msg)))
        })
        .await
    }

    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.with("reading a message", move |c| {
            c.query_row(
                &format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1 AND deleted = 0"),
                [id.to_hex()],
                msg_row,
            )
            .optional()
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
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender_role = ?2 AND seq > ?3 AND deleted = 0",
                params![conv, other, read_seq],
                |r| r.get(0),
            )?;
            tx.execute(&format!("UPDATE conversations SET {unread_col} = ?2 WHERE id = ?1"), params![conv, unread])?;
            if read_seq > before {
                let evt = format!("evt_{}", bson::oid::ObjectId::new().to_hex());
                let data = serde_json::json!({"readerRole": reader.role_name(), "upToSeq": read_seq});
                record_event(&tx, &evt, HookEvent::MessageRead, &conv, Utc::now(), &data)?;
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
                let data = change_data(kind, m.id, m.conversation_id, Some(&m.content), at);
                let conv = m.conversation_id.to_hex();
                record_event(&tx, &change_event_id(kind, m.id, at), kind, &conv, at, &data)?;
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
                let data = change_data(kind, m.id, m.conversation_id, None, at);
                let conv = m.conversation_id.to_hex();
                record_event(&tx, &change_event_id(kind, m.id, at), kind, &conv, at, &data)?;
            }
            tx.commit()?;
            Ok(m)
        })
        .await
    }

    async fn insert_upload(&self, u: &Upload) -> StoreResult<()> {
        let u = u.clone();
        self.with("recording an upload", move |c| {
            c.execute(
                &format!("INSERT INTO uploads ({UPLOAD_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"),
                params![
                    u.id.to_hex(),
                    u.conversation_id.to_hex(),
                    u.uploader_id,
                    u.uploader_side.role_name(),
                    u.name,
                    u.mime_type,
                    u.size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    u.has_thumbnail,
                    ms(u.created_at),
                    u.claim,
                    u.message_id.map(|m| m.to_hex()),
                    u.confirmed
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn finish_upload(&self, id: UploadId, mime_type: &str, size: u64, has_thumbnail: bool) -> StoreResult<bool> {
        let mime = mime_type.to_owned();
        self.with("recording an upload", move |c| {
            let n = c.execute(
                "UPDATE uploads SET mime_type = ?2, size = ?3, has_thumbnail = ?4 WHERE id = ?1",
                params![id.to_hex(), mime, i64::try_from(size).unwrap_or(i64::MAX), has_thumbnail],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_upload(&self, id: UploadId) -> StoreResult<Option<Upload>> {
        self.with("reading an upload", move |c| {
            c.query_row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1"), [id.to_hex()], upload_row)
                .optional()
        })
        .await
    }

    async fn claim_upload(
        &self,
        id: UploadId,
        conversation: ConversationId,
        uploader: &str,
        key: &str,
    ) -> StoreResult<Option<Upload>> {
        let (uploader, key) = (uploader.to_owned(), key.to_owned());
        self.with("claiming an upload", move |c| {
            c.query_row(
                &format!(
                    "UPDATE uploads SET claim = ?4 WHERE id = ?1 AND conversation_id = ?2 AND uploader_id = ?3 \
                     AND size IS NOT NULL AND ((claim IS NULL AND confirmed = 0) OR claim = ?4) RETURNING {UPLOAD_COLS}"
                ),
                params![id.to_hex(), conversation.to_hex(), uploader, key],
                upload_row,
            )
            .optional()
        })
        .await
    }

    async fn confirm_uploads(&self, ids: &[UploadId], message: MessageId) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(UploadId::to_hex).collect();
        self.with("confirming uploads", move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                tx.execute(
                    "UPDATE uploads SET message_id = ?2, confirmed = 1 WHERE id = ?1",
                    params![id, message.to_hex()],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn unconfirm_uploads(&self, ids: &[UploadId]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(UploadId::to_hex).collect();
        self.with("releasing uploads", move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                tx.execute("UPDATE uploads SET confirmed = 0 WHERE id = ?1", [id])?;
            }
            tx.commit()
        })
        .await
    }

    async fn stale_uploads(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Upload>> {
        self.with("listing stale uploads", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {UPLOAD_COLS} FROM uploads WHERE confirmed = 0 AND created_at < ?1 ORDER BY created_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![ms(before), i64::try_from(limit).unwrap_or(i64::MAX)], upload_row)?;
            rows.collect()
        })
        .await
    }

    async fn message_with_upload(&self, conversation: ConversationId, id: UploadId) -> StoreResult<Option<MessageId>> {
        self.with("looking for an upload's message", move |c| {
            let found: Option<String> = c
                .query_row(
                    "SELECT m.id FROM messages m WHERE m.conversation_id = ?1 AND EXISTS \
                     (SELECT 1 FROM json_each(m.attachments) a WHERE json_extract(a.value, '$.id') = ?2)",
                    params![conversation.to_hex(), id.to_hex()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(found.and_then(|s| s.parse().ok()))
        })
        .await
    }

    async fn delete_upload(&self, id: UploadId) -> StoreResult<()> {
        self.with("deleting an upload", move |c| {
            c.execute("DELETE FROM uploads WHERE id = ?1", [id.to_hex()])?;
            Ok(())
        })
        .await
    }

    async fn insert_quick_reply(&self, r: &QuickReply) -> StoreResult<bool> {
        let r = r.clone();
        self.with("saving a quick reply", move |c| {
            match c.execute(
                &format!("INSERT INTO quick_replies ({REPLY_COLS}) VALUES (?1,?2,?3,?4,?5,?6)"),
                params![
                    r.id.to_hex(),
                    r.owner.to_hex(),
                    r.shortcut.as_str(),
                    r.content,
                    ms(r.created_at),
                    ms(r.updated_at)
                ],
            ) {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn list_quick_replies(&self, owner: UserId) -> StoreResult<Vec<QuickReply>> {
        self.with("listing quick replies", move |c| {
            let mut stmt =
                c.prepare(&format!("SELECT {REPLY_COLS} FROM quick_replies WHERE owner = ?1 ORDER BY shortcut"))?;
            let rows = stmt.query_map([owner.to_hex()], reply_row)?;
            rows.collect()
        })
        .await
    }

    async fn get_quick_reply(&self, id: QuickReplyId) -> StoreResult<Option<QuickReply>> {
        self.with("reading a quick reply", move |c| {
            c.query_row(&format!("SELECT {REPLY_COLS} FROM quick_replies WHERE id = ?1"), [id.to_hex()], reply_row)
                .optional()
        })
        .await
    }

    async fn find_quick_reply(&self, owner: UserId, shortcut: &str) -> StoreResult<Option<QuickReply>> {
        let shortcut = shortcut.to_owned();
        self.with("reading a quick reply", move |c| {
            c.query_row(
                &format!("SELECT {REPLY_COLS} FROM quick_replies WHERE owner = ?1 AND shortcut = ?2"),
                params![owner.to_hex(), shortcut],
                reply_row,
            )
            .optional()
        })
        .await
    }

    async fn save_quick_reply(&self, r: &QuickReply) -> StoreResult<Option<bool>> {
        let r = r.clone();
        self.with("saving a quick reply", move |c| {
            match c.execute(
                "UPDATE quick_replies SET shortcut = ?2, content = ?3, updated_at = ?4 WHERE id = ?1",
                params![r.id.to_hex(), r.shortcut.as_str(), r.content, ms(r.updated_at)],
            ) {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(true)),
                Err(e) if is_unique_violation(&e) => Ok(Some(false)),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn delete_quick_reply(&self, id: QuickReplyId) -> StoreResult<bool> {
        self.with("deleting a quick reply", move |c| {
            Ok(c.execute("DELETE FROM quick_replies WHERE id = ?1", [id.to_hex()])? == 1)
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
        let (col, who) = match party {
            Party::Owner(u) => ("business_owner_id", u.to_hex()),
            Party::Customer(c) => ("customer_id", c.to_hex()),
        };
        let cols: String = MSG_COLS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ");
        self.with("searching messages", move |c| {
            let (at, id) = before.map_or((i64::MAX, String::new()), |(t, id)| (ms(t), id.to_hex()));
            let sql = format!(
                "SELECT {cols} FROM messages_fts f JOIN messages m ON m.rowid = f.rowid \
                 JOIN conversations c ON c.id = m.conversation_id \
                 WHERE messages_fts MATCH ?1 AND c.{col} = ?2 AND m.deleted = 0 \
                   AND (m.created_at < ?3 OR (m.created_at = ?3 AND m.id < ?4)) \
                 ORDER BY m.created_at DESC, m.id DESC LIMIT ?5"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params![fts, who, at, id, i64::try_from(limit).unwrap_or(i64::MAX)], msg_row)?;
            rows.collect()
        })
        .await
    }

    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        let e = e.clone();
        self.with("creating a webhook endpoint", move |c| {
            let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
            c.execute(
                &format!("INSERT INTO hook_endpoints ({ENDPOINT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"),
                params![
                    e.id.to_hex(),
                    e.owner.to_hex(),
                    e.url,
                    e.secret,
                    serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
                    e.description,
                    i64::from(e.enabled),
                    e.disabled_reason,
                    e.failure_streak,
                    ms(e.created_at),
                    ms(e.updated_at)
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>> {
        self.with("listing webhook endpoints", move |c| {
            let mut stmt =
                c.prepare(&format!("SELECT {ENDPOINT_COLS} FROM hook_endpoints WHERE owner = ?1 ORDER BY id"))?;
            stmt.query_map([owner.to_hex()], endpoint_row)?.collect()
        })
        .await
    }

    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>> {
        self.with("reading a webhook endpoint", move |c| {
            c.query_row(
                &format!("SELECT {ENDPOINT_COLS} FROM hook_endpoints WHERE id = ?1"),
                [id.to_hex()],
                endpoint_row,
            )
            .optional()
        })
        .await
    }

    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool> {
        let e = e.clone();
        self.with("saving a webhook endpoint", move |c| {
            let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
            c.execute(
                "UPDATE hook_endpoints SET url = ?2, events = ?3, description = ?4, enabled = ?5, \
                 disabled_reason = ?6, failure_streak = ?7, updated_at = ?8 WHERE id = ?1",
                params![
                    e.id.to_hex(),
                    e.url,
                    serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
                    e.description,
                    i64::from(e.enabled),
                    e.disabled_reason,
                    e.failure_streak,
                    ms(e.updated_at)
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool> {
        self.with("deleting a webhook endpoint", move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM hook_deliveries WHERE endpoint_id = ?1", [id.to_hex()])?;
            let n = tx.execute("DELETE FROM hook_endpoints WHERE id = ?1", [id.to_hex()])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64> {
        self.with("counting a webhook attempt", move |c| {
            let sql = if ok {
                "UPDATE hook_endpoints SET failure_streak = 0 WHERE id = ?1 RETURNING failure_streak"
            } else {
                "UPDATE hook_endpoints SET failure_streak = failure_streak + 1 WHERE id = ?1 RETURNING failure_streak"
            };
            Ok(c.query_row(sql, [id.to_hex()], |r| r.get(0)).optional()?.unwrap_or(0))
        })
        .await
    }

    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let reason = reason.to_owned();
        self.with("disabling a webhook endpoint", move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE hook_endpoints SET enabled = 0, disabled_reason = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND enabled = 1",
                params![id.to_hex(), reason, ms(now)],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE hook_deliveries SET status = 'paused', updated_at = ?2 \
                     WHERE endpoint_id = ?1 AND status = 'pending'",
                    params![id.to_hex(), ms(now)],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.with("reading the webhook outbox", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, kind, conversation_id, at, data FROM hook_events ORDER BY at, id LIMIT {limit}"
            ))?;
            stmt.query_map([], |row| {
                let kind: String = row.get(1)?;
                Ok(OutboxEvent {
                    id: row.get(0)?,
                    kind: HookEvent::parse(&kind).ok_or_else(|| bad(1, "unknown event kind"))?,
                    conversation: id(row, 2)?,
                    at: from_ms(row.get(3)?),
                    data: json_col(row, 4)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()> {
        let event_id = event.id.clone();
        let deliveries = deliveries.to_vec();
        self.with("fanning out a webhook event", move |c| {
            let tx = c.transaction()?;
            for d in &deliveries {
                tx.execute(
                    &format!(
                        "INSERT OR IGNORE INTO hook_deliveries ({DELIVERY_COLS}) \
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)"
                    ),
                    params![
                        d.id,
                        d.endpoint.to_hex(),
                        d.owner.to_hex(),
                        d.event_id,
                        d.kind.as_str(),
                        d.conversation.to_hex(),
                        d.body,
                        d.status.as_str(),
                        d.attempts,
                        ms(d.next_at),
                        ms(d.created_at),
                        ms(d.updated_at),
                        serde_json::to_string(&d.log).unwrap_or_else(|_| "[]".into()),
                        d.unread_check.and_then(|u| serde_json::to_string(&u).ok()),
                    ],
                )?;
            }
            tx.execute("DELETE FROM hook_events WHERE id = ?1", [&event_id])?;
            tx.commit()
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let holder = holder.to_owned();
        self.with("claiming webhook deliveries", move |c| {
            let mut stmt = c.prepare(&format!(
                "UPDATE hook_deliveries SET lease_until = ?1, lease_holder = ?2 WHERE id IN (\
                 SELECT id FROM hook_deliveries WHERE status = 'pending' AND next_at <= ?3 \
                 AND (lease_until IS NULL OR lease_until <= ?3) ORDER BY next_at LIMIT {limit}) \
                 RETURNING {DELIVERY_COLS}"
            ))?;
            stmt.query_map(params![ms(lease_until), holder, ms(now)], delivery_row)?.collect()
        })
        .await
    }

    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let d = d.clone();
        let holder = holder.to_owned();
        self.with("recording a webhook attempt", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = ?3, attempts = ?4, next_at = ?5, log = ?6, updated_at = ?7, \
                 lease_until = NULL, lease_holder = NULL WHERE id = ?1 AND lease_holder = ?2",
                params![
                    d.id,
                    holder,
                    d.status.as_str(),
                    d.attempts,
                    ms(d.next_at),
                    serde_json::to_string(&d.log).unwrap_or_else(|_| "[]".into()),
                    ms(now)
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.with("listing webhook deliveries", move |c| {
            let mut sql = format!("SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE endpoint_id = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![endpoint.to_hex().into()];
            if let Some((at, id)) = before {
                args.push(ms(at).into());
                args.push(id.into());
                sql += " AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))";
            }
            sql += &format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}");
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), delivery_row)?.collect()
        })
        .await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let id = id.to_owned();
        self.with("reading a webhook delivery", move |c| {
            c.query_row(&format!("SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE id = ?1"), [id], delivery_row)
                .optional()
        })
        .await
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.with("redelivering a webhook", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = 'pending', next_at = ?2, updated_at = ?2, unread_check = NULL, \
                 lease_until = NULL, lease_holder = NULL WHERE id = ?1",
                params![id, ms(now)],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.with("moving webhook deliveries", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = ?3, next_at = MIN(next_at, ?4), updated_at = ?4 \
                 WHERE endpoint_id = ?1 AND status = ?2",
                params![endpoint.to_hex(), from.as_str(), to.as_str(), ms(now)],
            )
            .map(|n| n as u64)
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
