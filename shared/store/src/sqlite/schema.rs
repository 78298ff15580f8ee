//! The tables, indexes and column lists, and upgrades of files written by
//! earlier releases.

use rusqlite::Connection;

pub(super) const SCHEMA: &str = r#"
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
    archived_owner INTEGER NOT NULL DEFAULT 0, archived_customer INTEGER NOT NULL DEFAULT 0,
    assignee TEXT, title TEXT, members TEXT,
    UNIQUE (business_owner_id, customer_id)
);
CREATE INDEX IF NOT EXISTS conversations_owner_activity ON conversations (business_owner_id, activity_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_customer_activity ON conversations (customer_id, activity_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL, sender_role TEXT NOT NULL, sender_name TEXT NOT NULL,
    content TEXT NOT NULL, attachments TEXT NOT NULL, client_message_id TEXT,
    status TEXT NOT NULL, created_at INTEGER NOT NULL,
    edited_at INTEGER, deleted INTEGER NOT NULL DEFAULT 0, reply_to TEXT, link_preview TEXT,
    private INTEGER NOT NULL DEFAULT 0, team_role TEXT, system INTEGER NOT NULL DEFAULT 0,
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
    created_at INTEGER NOT NULL, claim TEXT, message_id TEXT, confirmed INTEGER NOT NULL DEFAULT 0, audio TEXT
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
    updated_at INTEGER NOT NULL, log TEXT NOT NULL, unread_check TEXT, channel TEXT NOT NULL DEFAULT 'webhook'
);
CREATE INDEX IF NOT EXISTS hook_deliveries_due ON hook_deliveries (status, next_at);
CREATE INDEX IF NOT EXISTS hook_deliveries_endpoint ON hook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS push_subscriptions (
    id TEXT PRIMARY KEY, party TEXT NOT NULL, endpoint TEXT NOT NULL UNIQUE, p256dh TEXT NOT NULL, auth TEXT NOT NULL,
    user_agent TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS push_subscriptions_party ON push_subscriptions (party);
CREATE TABLE IF NOT EXISTS notification_prefs (party TEXT PRIMARY KEY, prefs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS session_revocations (party TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS team_members (
    user TEXT PRIMARY KEY, business TEXT NOT NULL, role TEXT NOT NULL, added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS team_members_business ON team_members (business, added_at);
CREATE TABLE IF NOT EXISTS team_settings (business TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
    conversation TEXT NOT NULL, customer TEXT NOT NULL, joined_at INTEGER NOT NULL,
    read_seq INTEGER NOT NULL DEFAULT 0, read_at INTEGER,
    PRIMARY KEY (conversation, customer)
);
CREATE INDEX IF NOT EXISTS group_members_customer ON group_members (customer);
CREATE TABLE IF NOT EXISTS team_reads (
    conversation TEXT NOT NULL, user TEXT NOT NULL, read_seq INTEGER NOT NULL, read_at INTEGER NOT NULL,
    PRIMARY KEY (conversation, user)
);
CREATE INDEX IF NOT EXISTS team_reads_user ON team_reads (user);
CREATE TABLE IF NOT EXISTS reactions (
    message_id TEXT NOT NULL, emoji TEXT NOT NULL, by_id TEXT NOT NULL, side TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, by_id)
);
"#;

pub(super) const ENDPOINT_COLS: &str = "id, owner, url, secret, events, description, enabled, disabled_reason, failure_streak, \
    created_at, updated_at";
pub(super) const DELIVERY_COLS: &str = "id, endpoint_id, owner, event_id, kind, conversation_id, body, status, attempts, next_at, \
    created_at, updated_at, log, unread_check, channel";

pub(super) const CONV_COLS: &str = "id, business_owner_id, customer_id, status, tags, priority, last_message, \
    last_message_time, last_message_seq, last_seq, unread_owner, unread_customer, read_seq_owner, \
    read_seq_customer, created_at, updated_at, archived_owner, archived_customer, assignee, title, members";
pub(super) const MSG_COLS: &str = "id, conversation_id, seq, sender_id, sender_role, sender_name, content, attachments, \
    client_message_id, status, created_at, edited_at, deleted, reply_to, link_preview, private, team_role, system";
pub(super) const UPLOAD_COLS: &str = "id, conversation_id, uploader_id, uploader_role, name, mime_type, size, has_thumbnail, \
    created_at, claim, message_id, confirmed, audio";
pub(super) const CUST_COLS: &str =
    "id, name, email, phone, invited_by, total_orders, total_spent, last_order_date, created_at, last_login";

/// Brings a file written by an earlier release up to the current schema.
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
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
    let has_reply_to =
        conn.prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'reply_to'")?.exists([])?;
    if !has_reply_to {
        conn.execute("ALTER TABLE messages ADD COLUMN reply_to TEXT", [])?;
    }
    let has_preview =
        conn.prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'link_preview'")?.exists([])?;
    if !has_preview {
        conn.execute("ALTER TABLE messages ADD COLUMN link_preview TEXT", [])?;
    }
    let has_archived =
        conn.prepare("SELECT 1 FROM pragma_table_info('conversations') WHERE name = 'archived_owner'")?.exists([])?;
    if !has_archived {
        conn.execute("ALTER TABLE conversations ADD COLUMN archived_owner INTEGER NOT NULL DEFAULT 0", [])?;
        conn.execute("ALTER TABLE conversations ADD COLUMN archived_customer INTEGER NOT NULL DEFAULT 0", [])?;
    }
    let has_audio = conn.prepare("SELECT 1 FROM pragma_table_info('uploads') WHERE name = 'audio'")?.exists([])?;
    if !has_audio {
        conn.execute("ALTER TABLE uploads ADD COLUMN audio TEXT", [])?;
    }
    let has_assignee =
        conn.prepare("SELECT 1 FROM pragma_table_info('conversations') WHERE name = 'assignee'")?.exists([])?;
    if !has_assignee {
        conn.execute("ALTER TABLE conversations ADD COLUMN assignee TEXT", [])?;
        conn.execute("ALTER TABLE conversations ADD COLUMN title TEXT", [])?;
        conn.execute("ALTER TABLE conversations ADD COLUMN members TEXT", [])?;
    }
    let has_private = conn.prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'private'")?.exists([])?;
    if !has_private {
        conn.execute("ALTER TABLE messages ADD COLUMN private INTEGER NOT NULL DEFAULT 0", [])?;
        conn.execute("ALTER TABLE messages ADD COLUMN team_role TEXT", [])?;
        conn.execute("ALTER TABLE messages ADD COLUMN system INTEGER NOT NULL DEFAULT 0", [])?;
    }
    let has_channel =
        conn.prepare("SELECT 1 FROM pragma_table_info('hook_deliveries') WHERE name = 'channel'")?.exists([])?;
    if !has_channel {
        conn.execute("ALTER TABLE hook_deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook'", [])?;
    }
    Ok(())
}
