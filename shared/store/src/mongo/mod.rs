//! MongoDB store (`mongodb` 3 driver).
//!
//! Collections and fields follow the seed's schema: `users`, `customers` (read;
//! the main app owns them), `conversations`, `messages`, with camelCase fields.
//! Documents are written as the Node service's Mongoose models write them
//! (`lastMessage` sub-document, `senderModel`, `readBy`, `isDeleted`,
//! timestamps) and read as they wrote them. Additions those models ignore:
//! `conversations.lastSeq` (per-conversation message counter, bumped with
//! `findOneAndUpdate` + `$inc`), `activityAt` (list ordering), `readSeq`,
//! `lastMessageTime`, and `messages.seq`, `clientMessageId`.
//!
//! A send is two round trips: one atomic update takes the next `seq`, checks
//! in its filter that the sender is a participant and the conversation is
//! not blocked, and sets `lastMessage`, `lastMessageTime` and `activityAt`
//! (so `lastMessage` is always that of the highest `seq` however concurrent
//! writers interleave); then the insert, which under load shares one
//! `insertMany` with the other sends of the moment (group commit, see
//! `inserts`). A retried `clientMessageId` is found
//! by the unique index refusing the insert, not by a lookup before every send;
//! the update is then undone (see `MongoStore::undo_append`).
//!
//! Indexes, created idempotently at start:
//! - `conversations {businessOwnerId, customerId}` unique;
//! - `conversations {businessOwnerId, activityAt:-1, _id:-1}` and
//!   `{customerId, activityAt:-1, _id:-1}` for the lists;
//! - `messages {conversationId, seq}` unique where `seq` exists (documents
//!   of the Node service have none until numbered; see [`legacy`]);
//! - `messages {conversationId, clientMessageId}` unique where present;
//! - `customers {invitedBy, _id:-1}`;
//! - `uploads {confirmed, createdAt}` (the upload sweeper);
//! - `quick_replies {owner, shortcut}` unique;
//! - `team_members {business, addedAt}` (a team's list; `_id` is the member);
//! - `conversations {members, activityAt:-1, _id:-1}` (a customer's groups);
//! - `group_reads {conversation}` (read positions in a group, `_id` = `<conversation>:<customer>`);
//! - `team_reads {user}` (a business-side person's own read positions, `_id` = `<conversation>:<user>`).
//!
//! Writes wait for the journal (`j: true`) unless the URI sets a write
//! concern: an acknowledged message survives a crash of the server.
//!
//! Shard key for large deployments: hashed `conversationId` on `messages`.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database, IndexModel};

mod accounts;
mod codec;
mod conversations;
mod errors;
mod inserts;
pub mod legacy;
mod messages;
mod notifications;
mod quick_replies;
mod schema;
mod sessions;
mod teams;
mod uploads;
mod webhooks;

use codec::*;
use errors::*;
use schema::*;
pub use schema::{durable_writes, index_models};

use super::{Store, StoreError, StoreResult};
use omnibiz_domain::{Conversation, Message};

/// Database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "omnibiz";

/// The MongoDB store. Cloning shares the driver's connection pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    users: Collection<Document>,
    customers: Collection<Document>,
    conversations: Collection<Document>,
    messages: Collection<Document>,
    endpoints: Collection<Document>,
    uploads: Collection<Document>,
    replies: Collection<Document>,
    deliveries: Collection<Document>,
    revocations: Collection<Document>,
    subscriptions: Collection<Document>,
    preferences: Collection<Document>,
    team_members: Collection<Document>,
    team_settings: Collection<Document>,
    group_reads: Collection<Document>,
    team_reads: Collection<Document>,
    /// Appends take their `seq` and insert the message on a pool of their
    /// own, one connection per permit (see [`MongoStore::append_message`]).
    appends: Appends,
}

/// The critical section of an append (take a `seq`, insert its message).
#[derive(Clone)]
pub(super) struct Appends {
    conversations: Collection<Document>,
    /// Message inserts, committed in groups under load (see [`inserts`]).
    inserter: inserts::Inserter,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Appends in flight per process, and the size of their connection pool.
pub(super) const APPEND_SLOTS: u32 = 16;
/// How far below a reader's previous read position `mark_read` re-checks
/// message statuses: enough for every append in flight on 16 pods.
pub(super) const READ_STATUS_SLACK: i64 = 16 * APPEND_SLOTS as i64;

impl MongoStore {
    /// Connects lazily (the driver retries in the background) and creates the
    /// indexes. Fails when the server cannot be reached within the timeout.
    pub async fn connect(uri: &str, database: Option<&str>) -> anyhow::Result<Self> {
        let mut opts = ClientOptions::parse(uri).await.context("parsing MONGODB_URI")?;
        opts.app_name = Some("omnibiz".into());
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        opts.connect_timeout = Some(Duration::from_secs(5));
        durable_writes(&mut opts);
        let name = database
            .map(str::to_owned)
            .or_else(|| opts.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let mut append_opts = opts.clone();
        append_opts.max_pool_size = Some(APPEND_SLOTS);
        append_opts.app_name = Some("omnibiz-appends".into());
        let append_db = Client::with_options(append_opts).context("creating the MongoDB client")?.database(&name);
        let appends = Appends {
            conversations: append_db.collection("conversations"),
            inserter: inserts::Inserter::spawn(append_db.collection("messages")),
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(APPEND_SLOTS as usize)),
        };
        let client = Client::with_options(opts).context("creating the MongoDB client")?;
        let db = client.database(&name);
        let store = Self {
            users: db.collection("users"),
            customers: db.collection("customers"),
            conversations: db.collection("conversations"),
            messages: db.collection("messages"),
            endpoints: db.collection("webhook_endpoints"),
            uploads: db.collection("uploads"),
            replies: db.collection("quick_replies"),
            deliveries: db.collection("webhook_deliveries"),
            revocations: db.collection("session_revocations"),
            subscriptions: db.collection("push_subscriptions"),
            preferences: db.collection("notification_prefs"),
            team_members: db.collection("team_members"),
            team_settings: db.collection("team_settings"),
            group_reads: db.collection("group_reads"),
            team_reads: db.collection("team_reads"),
            appends,
            db,
        };
        Ok(store)
    }

    /// The database this store works on.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Drops the whole database (tests).
    pub async fn drop_database(&self) -> StoreResult<()> {
        self.db.drop().await.map_err(|e| classify("dropping the database", e))
    }

    async fn find_conv(&self, filter: Document) -> StoreResult<Option<Conversation>> {
        let what = "reading a conversation";
        match self.conversations.find_one(filter).await.map_err(|e| classify(what, e))? {
            Some(d) => Ok(Some(conv_from(&d).context(what)?)),
            None => Ok(None),
        }
    }

    async fn find_msg(&self, filter: Document) -> StoreResult<Option<Message>> {
        let what = "reading a message";
        match self.messages.find_one(filter).await.map_err(|e| classify(what, e))? {
            Some(d) => Ok(Some(msg_from(&d).context(what)?)),
            None => Ok(None),
        }
    }

    async fn find_convs(&self, filter: Document, limit: Option<usize>) -> StoreResult<Vec<Conversation>> {
        let what = "listing conversations";
        let mut find = self.conversations.find(filter).sort(doc! {"activityAt": -1, "_id": -1});
        if let Some(l) = limit {
            find = find.limit(i64::try_from(l).unwrap_or(i64::MAX));
        }
        let docs = collect(what, find.await.map_err(|e| classify(what, e))?).await?;
        docs.iter().map(|d| conv_from(d).context(what).map_err(StoreError::Other)).collect()
    }
}

impl MongoStore {
    /// Creates every index the store relies on (idempotent). Each unique
    /// index on a field the Node service does not write (`seq`,
    /// `clientMessageId`) is partial, so its documents cannot block the build.
    /// An error names the index and the server's reason.
    pub async fn ensure_indexes(&self) -> StoreResult<()> {
        for (coll, spec) in wanted_indexes() {
            let model = IndexModel::builder().keys(spec.keys.clone()).options(spec.options()).build();
            let collection = self.db.collection::<Document>(coll);
            let what = format!("creating index {} on {coll}", spec.name());
            match collection.create_index(model).await {
                Ok(_) => {}
                Err(e) if is_options_conflict(&e) && self.has_stricter_index(coll, &spec).await => {
                    tracing::warn!(
                        index = %spec.name(), collection = coll,
                        "kept the full unique index of an earlier release; `omnibiz migrate` makes it partial, \
                         which the Node service's documents (no `seq`) need"
                    );
                }
                Err(e) => return Err(index_error(&what, e)),
            }
        }
        Ok(())
    }

    /// Whether `coll` has an index of this name, keys and uniqueness without
    /// the partial filter (our first release built `seq` that way).
    async fn has_stricter_index(&self, coll: &str, spec: &IndexSpec) -> bool {
        let Ok(existing) = self.indexes(coll).await else { return false };
        existing.iter().any(|m| spec.named_like(m) && is_unique(m) && same_keys(&m.keys, &spec.keys))
    }

    /// `listIndexes` of a collection (none when it does not exist yet).
    pub(crate) async fn indexes(&self, coll: &str) -> StoreResult<Vec<IndexModel>> {
        let what = "listing indexes";
        let cursor = match self.db.collection::<Document>(coll).list_indexes().await {
            Ok(c) => c,
            Err(e) if matches!(&*e.kind, ErrorKind::Command(ce) if ce.code == 26) => return Ok(Vec::new()),
            Err(e) => return Err(classify(what, e)),
        };
        cursor.try_collect().await.map_err(|e| classify(what, e))
    }
}

#[async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map(drop).map_err(|e| classify("pinging MongoDB", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnibiz_domain::Side;

    #[test]
    fn the_sender_side_comes_from_sender_model_then_sender_role() {
        let side = |d: Document| sender_side(&d);
        assert_eq!(side(doc! {"senderModel": "User", "senderRole": "customer"}), Side::Owner, "senderModel wins");
        assert_eq!(side(doc! {"senderModel": "Customer"}), Side::Customer);
        assert_eq!(side(doc! {"senderRole": "admin"}), Side::Owner, "an admin is on the business side");
        assert_eq!(side(doc! {"senderRole": "business_owner"}), Side::Owner, "our first release's documents");
    }
}
