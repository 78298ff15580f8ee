//! Embedded store on one SQLite file (WAL mode).
//!
//! One connection behind a `std::sync::Mutex`, used only inside
//! `spawn_blocking` and never held across an `.await`. Every write is a single
//! transaction, which is what makes `seq` assignment and create-or-get atomic.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};

mod accounts;
mod codec;
mod conversations;
mod messages;
mod notifications;
mod quick_replies;
mod schema;
mod sessions;
mod teams;
mod uploads;
mod webhooks;

use crate::{Store, StoreError, StoreResult};
use codec::*;
use omnibiz_domain::Conversation;
use schema::*;

/// The embedded store. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use chrono::{TimeZone as _, Utc};
    use omnibiz_domain::{Customer, CustomerId, UserId};

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
