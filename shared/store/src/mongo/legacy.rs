//! The Node service's data: checking it, migrating it, adopting what it
//! keeps writing.
//!
//! The Node service (Mongoose) writes the seed's documents: messages without
//! `seq`, conversations without `lastSeq`, `activityAt` or `readSeq`. Our
//! reads page and recover by `seq`, so every message needs one. Three pieces
//! give it one, and share one step ([`MongoStore::number`]):
//!
//! - **`omnibiz migrate`** ([`MongoStore::migrate`]) numbers every message
//!   without `seq`, per conversation in `(createdAt, _id)` order; fills the
//!   conversation fields our reads need; builds the indexes (the unique ones
//!   on our own fields are partial, so legacy documents cannot block them);
//!   then writes the schema marker `omnibiz_meta {_id: "schema"}`.
//! - **Readiness** ([`MongoStore::schema_state`]): `api` and `gateway` stay
//!   unready while the database holds un-numbered messages and no marker,
//!   and say so, naming `omnibiz migrate`. A database that needs nothing
//!   (fresh, or written only by us) gets the marker at once.
//! - **The adopter** ([`Adopter`]): while the Node service keeps writing,
//!   one `api` pod at a time (a lease in `omnibiz_meta {_id: "adopter"}`)
//!   polls for messages without `seq` whose `_id` is newer than its durable
//!   checkpoint minus [`ADOPT_LAG`], numbers them and hands them back to be
//!   published like any new message.
//!
//! # Numbering and its guarantees
//! A conversation's `k` un-numbered messages take a block of `seq`s with one
//! `$inc: {lastSeq: k}` (so they never collide with messages we store
//! meanwhile, which also take theirs from `lastSeq`), then each message gets
//! its `seq` with an update conditional on it having none. Whoever loses that
//! race (a second adopter after a lease change, `migrate` beside a pod)
//! changes nothing: one winner per message, whatever the number of pods.
//! A lost race or a kill between the two steps leaves unused numbers — gaps,
//! which `seq` allows — never a duplicate or a reordering of what is stored.
//! Within a block, messages are numbered in `(createdAt, _id)` order, one at
//! a time, so a `migrate` killed half-way has numbered a prefix, and the
//! rerun continues after it.
//!
//! The adopter's window rests on ObjectIds: Mongoose makes a message's `_id`
//! from the Node host's clock just before inserting it. The checkpoint only
//! is the start of the last complete pass, and each pass looks back
//! [`ADOPT_LAG`] before it, so a message whose insert lands up to that long
//! after its `_id` was made (a slow insert, clock skew between hosts) is
//! still seen. `migrate` sets the first checkpoint to its own start, so
//! nothing falls between the two. Each pass reads the `_id` index over that
//! window only; once the Node service is off, turn the adopter off
//! (`OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS=0`).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::options::ReturnDocument;
use omnibiz_domain::{Conversation, Message, Side};

use super::errors::{classify, is_duplicate_key};
use super::{Doc, MongoStore, collect, conv_from, date, msg_from, wanted_indexes};
use crate::{StoreError, StoreResult};

/// Our bookkeeping collection: the schema marker and the adopter's lease.
pub const META: &str = "omnibiz_meta";
/// Version of our additions to the seed's schema.
pub const SCHEMA_VERSION: i32 = 1;
/// How far behind its last complete pass the adopter looks again.
pub const ADOPT_LAG: Duration = Duration::from_secs(10);

/// Whether this database can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    Ready,
    /// Written by the Node service and not migrated yet; the reason says what was found.
    NeedsMigration(String),
}

/// Settings of one `migrate` run.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Report what would change and change nothing.
    pub dry_run: bool,
    /// Messages numbered per batch (one `$inc` each).
    pub batch: usize,
    /// Pause between batches, to go easy on a database in use.
    pub pause: Duration,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self { dry_run: false, batch: 1000, pause: Duration::ZERO }
    }
}

/// What a migration has to do (all of it, for `--dry-run`).
#[derive(Debug, Clone, Default)]
pub struct MigratePlan {
    /// Index changes, one line each ("create …", "replace …").
    pub indexes: Vec<String>,
    pub conversations: u64,
    /// Conversations missing a field our reads need (`lastSeq`, `activityAt`, …).
    pub conversations_to_fill: u64,
    /// Conversations whose `lastMessage` is a plain string (our first release).
    pub string_previews: u64,
    pub messages_to_number: u64,
    /// Conversations holding those messages.
    pub conversations_to_number: u64,
    pub marker_present: bool,
    /// `(businessOwnerId, customerId)` pairs held by more than one
    /// conversation: they block the unique index and must be merged by hand.
    pub duplicate_pairs: Vec<String>,
}

/// What a migration did.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    pub plan: MigratePlan,
    pub conversations_filled: u64,
    pub numbered: u64,
    /// Messages left without `seq` because their conversation does not exist.
    pub orphans: u64,
}

/// Messages of one conversation this call numbered, in `seq` order, and
/// the conversation after numbering (to publish them).
#[derive(Debug, Clone)]
pub struct Adopted {
    pub conversation: Conversation,
    pub messages: Vec<Message>,
}

/// An ObjectId whose timestamp is `t` and whose other bytes are zero: the
/// smallest `_id` made at that second.
fn oid_at(t: DateTime<Utc>) -> ObjectId {
    let secs = u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX);
    let mut bytes = [0_u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

fn lag() -> chrono::Duration {
    chrono::Duration::from_std(ADOPT_LAG).unwrap_or_else(|_| chrono::Duration::seconds(10))
}

impl MongoStore {
    fn meta(&self) -> mongodb::Collection<Document> {
        self.db.collection(META)
    }

    /// Whether `api`/`gateway` may serve this database. Writes the schema
    /// marker when nothing needs migrating (fresh, or written only by us).
    pub async fn schema_state(&self, by: &str) -> StoreResult<SchemaState> {
        let what = "checking the schema";
        let marker = self.meta().find_one(doc! {"_id": "schema"}).await.map_err(|e| classify(what, e))?;
        if marker.is_some_and(|m| Doc(&m).int("version") >= i64::from(SCHEMA_VERSION)) {
            return Ok(SchemaState::Ready);
        }
        let left_by_node = [
            (&self.messages, doc! {"seq": {"$exists": false}}, "messages without `seq` (written by the Node service)"),
            (&self.conversations, doc! {"activityAt": {"$exists": false}}, "conversations written by the Node service"),
        ];
        for (coll, filter, what_found) in left_by_node {
            let found =
                coll.find_one(filter).projection(doc! {"_id": 1}).await.map_err(|e| classify(what, e))?.is_some();
            if found {
                return Ok(SchemaState::NeedsMigration(format!(
                    "the database holds {what_found} and has not been migrated: run `omnibiz migrate` (see \
                     docs/migration.md)"
                )));
            }
        }
        self.write_marker(Utc::now(), by).await?;
        Ok(SchemaState::Ready)
    }

    async fn write_marker(&self, adopt_from: DateTime<Utc>, by: &str) -> StoreResult<()> {
        self.meta()
            .update_one(
                doc! {"_id": "schema"},
                doc! {"$set": {
                    "version": SCHEMA_VERSION, "adoptFrom": date(adopt_from), "by": by, "at": date(Utc::now()),
                }},
            )
            .upsert(true)
            .await
            .map(drop)
            .map_err(|e| classify("writing the schema marker", e))
    }

    /// Numbers `docs` (un-numbered messages of one conversation, in
    /// `(createdAt, _id)` order): one block of `seq`s, then one conditional
    /// update per message. Returns what this call numbered (another adopter
    /// may have taken some); `None` when the conversation does not exist.
    async fn number(&self, conv: ObjectId, docs: &[Document], set_preview: bool) -> StoreResult<Option<Adopted>> {
        let what = "numbering messages";
        let (Some(last), Ok(k)) = (docs.last(), i64::try_from(docs.len())) else { return Ok(None) };
        let last_at = last.get_datetime("createdAt").ok().copied();
        let mut update = doc! {"$inc": {"lastSeq": k}};
        if let Some(at) = last_at {
            update.insert("$max", doc! {"activityAt": at});
        }
        if set_preview {
            // Keeps "lastMessage is the message with the highest seq".
            let preview = doc! {
                "content": last.get("content").cloned().unwrap_or(Bson::Null),
                "senderId": last.get("senderId").cloned().unwrap_or(Bson::Null),
                "timestamp": last_at.map_or(Bson::Null, Bson::DateTime),
            };
            let mut set = doc! {"lastMessage": preview};
            if let Some(at) = last_at {
                set.insert("lastMessageTime", at);
            }
            update.insert("$set", set);
        }
        let Some(after) = self
            .conversations
            .find_one_and_update(doc! {"_id": conv}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?
        else {
            return Ok(None);
        };
        let conversation = conv_from(&after).context(what)?;
        let first = conversation.last_seq - k + 1;
        let mut messages = Vec::with_capacity(docs.len());
        let mut read = [0_i64; 2]; // highest read seq sent by [owner, customer]
        for (i, d) in docs.iter().enumerate() {
            let seq = first + i64::try_from(i).unwrap_or(i64::MAX);
            let id = d.get_object_id("_id").context(what)?;
            // Adopting a message the Node service just stored also records its
            // `message.created` webhook event (atomically, like our own sends);
            // `migrate` numbering old history does not.
            let set = if set_preview {
                doc! {"seq": seq, "hook": true}
            } else {
                doc! {"seq": seq}
            };
            let r = self.messages.update_one(doc! {"_id": id, "seq": {"$exists": false}}, doc! {"$set": set}).await;
            match r {
                Ok(r) if r.modified_count == 1 => {}
                Ok(_) => continue, // another adopter numbered it first
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(classify(what, e)),
            }
            let mut numbered = d.clone();
            numbered.insert("seq", seq);
            let message = msg_from(&numbered).context(what)?;
            if message.status == omnibiz_domain::MessageStatus::Read {
                let slot = usize::from(message.sender_side == Side::Customer);
                read[slot] = read[slot].max(seq);
            }
            messages.push(message);
        }
        // The owner has read what the customer sent up to read[1], and the other way round.
        if read != [0, 0] {
            self.conversations
                .update_one(
                    doc! {"_id": conv},
                    doc! {"$max": {"readSeq.businessOwner": read[1], "readSeq.customer": read[0]}},
                )
                .await
                .map_err(|e| classify(what, e))?;
        }
        Ok(Some(Adopted { conversation, messages }))
    }

    /// Un-numbered messages of one conversation, oldest first, at most `limit`.
    async fn unnumbered_in(&self, conv: ObjectId, limit: usize) -> StoreResult<Vec<Document>> {
        let what = "reading un-numbered messages";
        let cursor = self
            .messages
            .find(doc! {"conversationId": conv, "seq": {"$exists": false}})
            .sort(doc! {"createdAt": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .allow_disk_use(true)
            .await
            .map_err(|e| classify(what, e))?;
        collect(what, cursor).await
    }

    /// What `migrate` would do.
    pub async fn migration_plan(&self) -> StoreResult<MigratePlan> {
        let what = "planning the migration";
        let mut plan = MigratePlan::default();
        for (coll, spec) in wanted_indexes() {
            let existing = self.indexes(coll).await?;
            if existing.iter().any(|m| spec.matches(m)) {
                continue;
            }
            let same_name = existing.iter().any(|m| spec.named_like(m));
            let verb = if same_name { "replace" } else { "create" };
            plan.indexes.push(format!("{verb} index {} on {coll}", spec.name()));
        }
        let mut cursor = self
            .conversations
            .find(doc! {})
            .projection(doc! {"lastSeq": 1, "activityAt": 1, "readSeq": 1, "unreadCount": 1, "lastMessage": 1})
            .await
            .map_err(|e| classify(what, e))?;
        while let Some(d) = cursor.try_next().await.map_err(|e| classify(what, e))? {
            plan.conversations += 1;
            if needs_fill(&d) {
                plan.conversations_to_fill += 1;
            }
            if matches!(d.get("lastMessage"), Some(Bson::String(_))) {
                plan.string_previews += 1;
            }
        }
        for (_, n) in self.unnumbered_by_conversation().await? {
            plan.conversations_to_number += 1;
            plan.messages_to_number += n;
        }
        plan.duplicate_pairs = self.duplicate_pairs().await?;
        plan.marker_present =
            self.meta().find_one(doc! {"_id": "schema"}).await.map_err(|e| classify(what, e))?.is_some();
        Ok(plan)
    }

    /// Owner/customer pairs with more than one conversation (at most 20).
    async fn duplicate_pairs(&self) -> StoreResult<Vec<String>> {
        let what = "looking for duplicate conversations";
        let pipeline = [
            doc! {"$group": {
                "_id": {"o": "$businessOwnerId", "c": "$customerId"},
                "n": {"$sum": 1}, "ids": {"$push": "$_id"},
            }},
            doc! {"$match": {"n": {"$gt": 1}}},
            doc! {"$limit": 20},
        ];
        let groups = aggregate(what, &self.conversations, pipeline).await?;
        Ok(groups
            .iter()
            .map(|g| {
                let ids: Vec<String> = g
                    .get_array("ids")
                    .map(|a| a.iter().filter_map(Bson::as_object_id).map(|o| o.to_hex()).collect())
                    .unwrap_or_default();
                format!("conversations {} share one business owner and customer", ids.join(", "))
            })
            .collect())
    }

    /// Conversations with un-numbered messages, and how many each.
    async fn unnumbered_by_conversation(&self) -> StoreResult<BTreeMap<ObjectId, u64>> {
        let what = "counting un-numbered messages";
        let pipeline = [
            doc! {"$match": {"seq": {"$exists": false}}},
            doc! {"$group": {"_id": "$conversationId", "n": {"$sum": 1}}},
        ];
        let groups = aggregate(what, &self.messages, pipeline).await?;
        Ok(groups
            .iter()
            .filter_map(|g| Some((g.get_object_id("_id").ok()?, u64::try_from(Doc(g).int("n")).unwrap_or(0))))
            .collect())
    }

    /// Migrates a database the Node service wrote (see the module docs).
    /// `progress(done, total)` is called after every batch of messages.
    pub async fn migrate(
        &self,
        opts: &MigrateOptions,
        by: &str,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> StoreResult<MigrateReport> {
        let started = Utc::now();
        let plan = self.migration_plan().await?;
        let mut report = MigrateReport { plan: plan.clone(), ..MigrateReport::default() };
        if opts.dry_run {
            return Ok(report);
        }
        if !plan.duplicate_pairs.is_empty() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the unique index on (businessOwnerId, customerId) cannot be built: {}; merge or remove the \
                 duplicates, then run `omnibiz migrate` again (nothing was changed)",
                plan.duplicate_pairs.join("; ")
            )));
        }
        self.replace_indexes().await?;
        report.conversations_filled = self.fill_conversations().await?;
        let total = plan.messages_to_number;
        progress(0, total);
        let batch = opts.batch.max(1);
        for (conv, _) in self.unnumbered_by_conversation().await? {
            loop {
                let docs = self.unnumbered_in(conv, batch).await?;
                if docs.is_empty() {
                    break;
                }
                let n = docs.len() as u64;
                match self.number(conv, &docs, false).await? {
                    Some(done) => report.numbered += done.messages.len() as u64,
                    None => {
                        tracing::warn!(conversation = %conv, messages = n, "messages of a conversation that does not exist: left without seq");
                        report.orphans += n;
                        break;
                    }
                }
                progress(report.numbered + report.orphans, total.max(report.numbered + report.orphans));
                if docs.len() < batch {
                    break;
                }
                if !opts.pause.is_zero() {
                    tokio::time::sleep(opts.pause).await;
                }
            }
        }
        self.write_marker(started, by).await?;
        Ok(report)
    }

    /// Drops an index whose definition differs from ours under the same name
    /// (our first release's full unique `seq` index), then creates them all.
    async fn replace_indexes(&self) -> StoreResult<()> {
        for (coll, spec) in wanted_indexes() {
            let existing = self.indexes(coll).await?;
            let stale = existing.iter().any(|m| spec.named_like(m) && !spec.matches(m));
            if stale {
                tracing::info!(index = %spec.name(), collection = coll, "replacing an index defined differently");
                self.db
                    .collection::<Document>(coll)
                    .drop_index(spec.name())
                    .await
                    .map_err(|e| classify("dropping a stale index", e))?;
            }
        }
        self.ensure_indexes().await
    }

    /// Gives every conversation the fields our reads need; returns how many changed.
    async fn fill_conversations(&self) -> StoreResult<u64> {
        let what = "filling conversation fields";
        let mut cursor = self.conversations.find(doc! {}).await.map_err(|e| classify(what, e))?;
        let mut changed = 0;
        while let Some(d) = cursor.try_next().await.map_err(|e| classify(what, e))? {
            let Ok(id) = d.get_object_id("_id") else { continue };
            if let Some(Bson::String(s)) = d.get("lastMessage") {
                self.convert_preview(id, s, &d).await?;
                changed += 1;
            }
            if !needs_fill(&d) {
                continue;
            }
            let x = Doc(&d);
            let activity = match d.get_document("lastMessage") {
                Ok(lm) => Doc(lm).date("timestamp"),
                Err(_) => None,
            }
            .or_else(|| x.date("lastMessageTime"))
            .or_else(|| x.date("updatedAt"))
            .or_else(|| x.date("createdAt"))
            .unwrap_or_else(|| id.timestamp().to_chrono());
            self.conversations
                .update_one(
                    doc! {"_id": id},
                    doc! {"$max": {
                        "lastSeq": 0_i64, "activityAt": date(activity),
                        "readSeq.businessOwner": 0_i64, "readSeq.customer": 0_i64,
                        "unreadCount.businessOwner": 0_i32, "unreadCount.customer": 0_i32,
                    }},
                )
                .await
                .map_err(|e| classify(what, e))?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Turns our first release's string `lastMessage` into the seed's sub-document.
    async fn convert_preview(&self, id: ObjectId, content: &str, d: &Document) -> StoreResult<()> {
        let what = "converting a conversation preview";
        let last = Doc(d).int("lastSeq");
        let sender = self
            .messages
            .find_one(doc! {"conversationId": id, "seq": last})
            .projection(doc! {"senderId": 1})
            .await
            .map_err(|e| classify(what, e))?
            .and_then(|m| m.get("senderId").cloned())
            .unwrap_or(Bson::Null);
        let at = d.get("lastMessageTime").cloned().unwrap_or(Bson::Null);
        self.conversations
            .update_one(
                doc! {"_id": id, "lastMessage": content},
                doc! {"$set": {"lastMessage": {"content": content, "senderId": sender, "timestamp": at}}},
            )
            .await
            .map(drop)
            .map_err(|e| classify(what, e))
    }
}

/// Runs an aggregation (spilling to disk when it must) and collects it.
async fn aggregate(
    what: &'static str,
    coll: &mongodb::Collection<Document>,
    pipeline: impl IntoIterator<Item = Document>,
) -> StoreResult<Vec<Document>> {
    let cursor = coll.aggregate(pipeline).allow_disk_use(true).await.map_err(|e| classify(what, e))?;
    collect(what, cursor).await
}

fn needs_fill(d: &Document) -> bool {
    ["lastSeq", "activityAt", "readSeq", "unreadCount"].iter().any(|k| !d.contains_key(k))
}

/// Numbers, once, each message the Node service stores while we run (see the module docs).
pub struct Adopter {
    store: MongoStore,
    /// This process, in the lease.
    holder: String,
    lease: Duration,
    batch: usize,
}

impl Adopter {
    pub fn new(store: MongoStore, holder: &str, lease: Duration) -> Self {
        Self { store, holder: holder.to_owned(), lease, batch: 500 }
    }

    /// Takes or renews the lease; false when another process holds it.
    async fn lease(&self, now: DateTime<Utc>) -> StoreResult<bool> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or_else(|_| chrono::Duration::seconds(10));
        let r = self
            .store
            .meta()
            .find_one_and_update(
                doc! {"_id": "adopter", "$or": [{"until": {"$lt": date(now)}}, {"holder": &self.holder}]},
                doc! {"$set": {"holder": &self.holder, "until": date(until)}},
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match r {
            Ok(Some(d)) => Ok(d.get_str("holder").is_ok_and(|h| h == self.holder)),
            Ok(None) => Ok(false),
            // The document exists and someone else holds it: the upsert collided.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(classify("taking the adopter lease", e)),
        }
    }

    /// Where the next pass starts: the durable checkpoint, else the marker's `adoptFrom`.
    async fn checkpoint(&self) -> StoreResult<DateTime<Utc>> {
        let what = "reading the adopter checkpoint";
        let meta = self.store.meta();
        let lease = meta.find_one(doc! {"_id": "adopter"}).await.map_err(|e| classify(what, e))?;
        if let Some(at) = lease.as_ref().and_then(|d| Doc(d).date("checkpoint")) {
            return Ok(at);
        }
        let marker = meta.find_one(doc! {"_id": "schema"}).await.map_err(|e| classify(what, e))?;
        Ok(marker.and_then(|d| Doc(&d).date("adoptFrom")).unwrap_or_else(Utc::now))
    }

    /// One pass: numbers every un-numbered message inside the window and
    /// returns them by conversation, in `seq` order. Empty when another
    /// process holds the lease.
    pub async fn run_once(&self) -> StoreResult<Vec<Adopted>> {
        let pass_start = Utc::now();
        if !self.lease(pass_start).await? {
            return Ok(Vec::new());
        }
        let what = "adopting messages";
        let from = self.checkpoint().await? - lag();
        let mut after: Option<ObjectId> = None;
        let mut out = Vec::new();
        loop {
            let id_range = match after {
                Some(a) => doc! {"$gt": a},
                None => doc! {"$gte": oid_at(from)},
            };
            let cursor = self
                .store
                .messages
                .find(doc! {"_id": id_range, "seq": {"$exists": false}})
                .sort(doc! {"_id": 1})
                .limit(i64::try_from(self.batch).unwrap_or(i64::MAX))
                .await
                .map_err(|e| classify(what, e))?;
            let page = collect(what, cursor).await?;
            let full = page.len() == self.batch;
            after = page.last().and_then(|d| d.get_object_id("_id").ok());
            let mut by_conv: BTreeMap<ObjectId, Vec<Document>> = BTreeMap::new();
            for d in page {
                if let Ok(c) = d.get_object_id("conversationId") {
                    by_conv.entry(c).or_default().push(d);
                }
            }
            for (conv, mut docs) in by_conv {
                docs.sort_by_key(|d| (d.get_datetime("createdAt").ok().copied(), d.get_object_id("_id").ok()));
                match self.store.number(conv, &docs, true).await? {
                    Some(done) if !done.messages.is_empty() => out.push(done),
                    Some(_) => {}
                    None => {
                        tracing::warn!(conversation = %conv, "a message of a conversation that does not exist: not adopted")
                    }
                }
            }
            if !full {
                break;
            }
        }
        // The pass saw everything up to its start: next time, look back from there.
        self.store
            .meta()
            .update_one(
                doc! {"_id": "adopter", "holder": &self.holder},
                doc! {"$max": {"checkpoint": date(pass_start)}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        let adopted: usize = out.iter().map(|a| a.messages.len()).sum();
        if adopted > 0 {
            metrics::counter!("legacy_messages_adopted_total").increment(adopted as u64);
            tracing::info!(messages = adopted, "adopted messages stored by the Node service");
        }
        Ok(out)
    }
}
