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
//! - `quick_replies {owner, shortcut}` unique.
//!
//! Writes wait for the journal (`j: true`) unless the URI sets a write
//! concern: an acknowledged message survives a crash of the server.
//!
//! Shard key for large deployments: hashed `conversationId` on `messages`.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

mod inserts;
pub mod legacy;

use super::{
    Appended, ConversationPatch, ConversationQuery, CustomerQuery, DELETED_PREVIEW, MessageQuery, NewMessage,
    Participants, Party, ReadOutcome, Store, StoreError, StoreResult,
};
use crate::domain::search::SearchQuery;
use crate::domain::{
    Attachment, Conversation, ConversationId, ConversationStatus, Customer, CustomerId, EndpointId, Message, MessageId,
    MessageStatus, PerSide, Priority, QuickReply, QuickReplyId, Shortcut, Side, UploadId, User, UserId, UserRole,
};
use crate::files::Upload;
use crate::hooks::{Attempt, Delivery, DeliveryStatus, Endpoint, HookEvent, OutboxEvent, UnreadCheck};
use crate::service::views::MessageView;

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
    /// Appends take their `seq` and insert the message on a pool of their
    /// own, one connection per permit (see [`MongoStore::append_message`]).
    appends: Appends,
}

/// The critical section of an append (take a `seq`, insert its message).
#[derive(Clone)]
struct Appends {
    conversations: Collection<Document>,
    /// Message inserts, committed in groups under load (see [`inserts`]).
    inserter: inserts::Inserter,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Appends in flight per process, and the size of their connection pool.
const APPEND_SLOTS: u32 = 16;
/// How far below a reader's previous read position `mark_read` re-checks
/// message statuses: enough for every append in flight on 16 pods.
const READ_STATUS_SLACK: i64 = 16 * APPEND_SLOTS as i64;

fn classify(what: &'static str, e: mongodb::error::Error) -> StoreError {
    metrics::counter!("store_errors_total", "backend" => "mongodb").increment(1);
    let unavailable = matches!(
        *e.kind,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
    );
    let err = anyhow::Error::new(e).context(what);
    if unavailable { StoreError::Unavailable(err) } else { StoreError::Other(err) }
}

/// Like [`classify`], with a message that says which index failed and why.
fn index_error(what: &str, e: mongodb::error::Error) -> StoreError {
    let hint = match &*e.kind {
        ErrorKind::Command(ce) if ce.code == 11000 => {
            " (documents already in the collection violate it; `omnibiz migrate --dry-run` lists them)"
        }
        ErrorKind::Command(ce) if ce.code == 85 || ce.code == 86 => {
            " (an older definition of it exists: `omnibiz migrate` replaces it)"
        }
        _ => "",
    };
    let what = format!("{what}{hint}");
    match classify("creating indexes", e) {
        StoreError::Unavailable(err) => StoreError::Unavailable(err.context(what)),
        StoreError::Other(err) => StoreError::Other(err.context(what)),
    }
}

/// An index the store relies on.
pub(crate) struct IndexSpec {
    pub(crate) keys: Document,
    pub(crate) unique: bool,
    /// Only documents with this field are indexed (a partial index).
    pub(crate) only_with: Option<&'static str>,
}

impl IndexSpec {
    fn new(keys: Document) -> Self {
        Self { keys, unique: false, only_with: None }
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn only_with(mut self, field: &'static str) -> Self {
        self.only_with = Some(field);
        self
    }
    /// MongoDB's default name (`conversationId_1_seq_1`), which existing databases use.
    pub(crate) fn name(&self) -> String {
        self.keys.iter().map(|(k, v)| format!("{k}_{v}")).collect::<Vec<_>>().join("_")
    }
    fn options(&self) -> IndexOptions {
        let mut o = IndexOptions::builder().name(self.name()).build();
        if self.unique {
            o.unique = Some(true);
        }
        if let Some(f) = self.only_with {
            o.partial_filter_expression = Some(doc! { f: {"$exists": true} });
        }
        o
    }
    /// Whether an existing index has this one's name.
    pub(crate) fn named_like(&self, existing: &IndexModel) -> bool {
        existing.options.as_ref().and_then(|o| o.name.as_deref()) == Some(self.name().as_str())
    }
    /// Whether an existing index (from `listIndexes`) is this one, options included.
    pub(crate) fn matches(&self, existing: &IndexModel) -> bool {
        let o = existing.options.as_ref();
        let partial = o.and_then(|o| o.partial_filter_expression.as_ref());
        same_keys(&existing.keys, &self.keys)
            && is_unique(existing) == self.unique
            && match (self.only_with, partial) {
                (None, None) => true,
                (Some(f), Some(p)) => p.contains_key(f),
                _ => false,
            }
    }
}

fn is_unique(index: &IndexModel) -> bool {
    index.options.as_ref().and_then(|o| o.unique).unwrap_or(false)
}

fn same_keys(a: &Document, b: &Document) -> bool {
    let num = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    };
    a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && num(va) == num(vb))
}

/// The indexes the store creates on `collection`, for tools that reproduce
/// its writes (the load generator's database ceiling).
pub fn index_models(collection: &str) -> Vec<IndexModel> {
    wanted_indexes()
        .into_iter()
        .filter(|(c, _)| *c == collection)
        .map(|(_, spec)| IndexModel::builder().keys(spec.keys.clone()).options(spec.options()).build())
        .collect()
}

/// Every index, by collection.
pub(crate) fn wanted_indexes() -> Vec<(&'static str, IndexSpec)> {
    vec![
        ("conversations", IndexSpec::new(doc! {"businessOwnerId": 1, "customerId": 1}).unique()),
        ("conversations", IndexSpec::new(doc! {"businessOwnerId": 1, "activityAt": -1, "_id": -1})),
        ("conversations", IndexSpec::new(doc! {"customerId": 1, "activityAt": -1, "_id": -1})),
        ("messages", IndexSpec::new(doc! {"conversationId": 1, "seq": 1}).unique().only_with("seq")),
        (
            "messages",
            IndexSpec::new(doc! {"conversationId": 1, "clientMessageId": 1}).unique().only_with("clientMessageId"),
        ),
        ("customers", IndexSpec::new(doc! {"invitedBy": 1, "_id": -1})),
        // The webhook outbox: messages and conversations with events not fanned out yet.
        ("messages", IndexSpec::new(doc! {"hook": 1}).only_with("hook")),
        ("messages", IndexSpec::new(doc! {"hookPending": 1}).only_with("hookPending")),
        ("conversations", IndexSpec::new(doc! {"hookPending": 1}).only_with("hookPending")),
        ("webhook_endpoints", IndexSpec::new(doc! {"owner": 1})),
        // The sweeper's query: unconfirmed uploads, oldest first.
        ("uploads", IndexSpec::new(doc! {"confirmed": 1, "createdAt": 1})),
        ("quick_replies", IndexSpec::new(doc! {"owner": 1, "shortcut": 1}).unique()),
        ("webhook_deliveries", IndexSpec::new(doc! {"status": 1, "nextAt": 1})),
        ("webhook_deliveries", IndexSpec::new(doc! {"endpointId": 1, "createdAt": -1, "_id": -1})),
    ]
}

fn is_options_conflict(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, ErrorKind::Command(ce) if ce.code == 85 || ce.code == 86)
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == 11000,
        ErrorKind::Command(ce) => ce.code == 11000,
        ErrorKind::InsertMany(im) => im.write_errors.iter().flatten().any(|we| we.code == 11000),
        _ => false,
    }
}

/// The store's write concern: an acknowledged write must survive a crash of
/// the server, so wait for the journal (`j: true`) unless the URI sets a
/// journal option of its own. Without it a SIGKILLed server lost messages it
/// had already acknowledged (tests/chaos.rs). `w` stays the server's default
/// (`majority` on replica sets). Public so `raw-insert` writes the same way.
pub fn durable_writes(opts: &mut ClientOptions) {
    let wc = opts.write_concern.get_or_insert_with(Default::default);
    if wc.journal.is_none() {
        wc.journal = Some(true);
    }
}

fn side_key(side: Side) -> &'static str {
    match side {
        Side::Owner => "businessOwner",
        Side::Customer => "customer",
    }
}

fn date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_chrono(t)
}

/// A fresh outbox event id.
fn new_event_id() -> String {
    format!("evt_{}", ObjectId::new().to_hex())
}

/// An entry of a conversation's `hooks` map (the webhook outbox).
fn hook_entry(kind: HookEvent, at: DateTime<Utc>, data: Document) -> Document {
    doc! {"kind": kind.as_str(), "at": date(at), "data": data}
}

/// Documents of `coll` with webhook events waiting in their `hooks` map
/// (with the field naming their conversation).
async fn pending_hooks(coll: &Collection<Document>, conv_field: &str, limit: i64) -> StoreResult<Vec<Document>> {
    let what = "reading the webhook outbox";
    let cursor = coll
        .find(doc! {"hookPending": true})
        .projection(doc! {"hooks": 1, conv_field: 1})
        .limit(limit)
        .await
        .map_err(|e| classify(what, e))?;
    collect(what, cursor).await
}

/// A message update's `$set`, with its `message.updated` / `message.deleted`
/// outbox entry in the message's own `hooks` map (atomic with the change).
fn change_set(
    mut set: Document,
    kind: HookEvent,
    id: MessageId,
    conversation: ConversationId,
    content: Option<&str>,
    at: DateTime<Utc>,
) -> Document {
    let data = crate::hooks::change_data(kind, id, conversation, content, at);
    let data = bson::to_document(&data).unwrap_or_default();
    set.insert(format!("hooks.{}", crate::hooks::change_event_id(kind, id, at)), hook_entry(kind, at, data));
    set.insert("hookPending", true);
    set
}

fn endpoint_doc(e: &Endpoint) -> Document {
    let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
    doc! {
        "_id": e.id.oid(), "owner": e.owner.oid(), "url": &e.url, "secret": &e.secret, "events": events,
        "description": &e.description, "enabled": e.enabled, "disabledReason": e.disabled_reason.clone(),
        "failureStreak": e.failure_streak, "createdAt": date(e.created_at), "updatedAt": date(e.updated_at),
    }
}

fn endpoint_from(d: &Document) -> anyhow::Result<Endpoint> {
    let x = Doc(d);
    Ok(Endpoint {
        id: x.oid("_id")?.into(),
        owner: x.oid("owner")?.into(),
        url: x.str("url")?,
        secret: x.str("secret")?,
        events: d
            .get_array("events")
            .map(|a| a.iter().filter_map(|e| e.as_str().and_then(HookEvent::parse)).collect())
            .unwrap_or_default(),
        description: x.opt_str("description").unwrap_or_default(),
        enabled: d.get_bool("enabled").unwrap_or(false),
        disabled_reason: x.opt_str("disabledReason"),
        failure_streak: x.int("failureStreak"),
        created_at: x.date("createdAt").unwrap_or_default(),
        updated_at: x.date("updatedAt").unwrap_or_default(),
    })
}

fn delivery_doc(d: &Delivery) -> anyhow::Result<Document> {
    Ok(doc! {
        "_id": &d.id, "endpointId": d.endpoint.oid(), "owner": d.owner.oid(), "eventId": &d.event_id,
        "kind": d.kind.as_str(), "conversationId": d.conversation.oid(), "body": &d.body,
        "status": d.status.as_str(), "attempts": d.attempts, "nextAt": date(d.next_at),
        "createdAt": date(d.created_at), "updatedAt": date(d.updated_at),
        "log": bson::to_bson(&d.log).context("encoding the attempt log")?,
        "unreadCheck": match d.unread_check { Some(u) => bson::to_bson(&u).context("encoding the unread check")?, None => Bson::Null },
    })
}

fn delivery_from(d: &Document) -> anyhow::Result<Delivery> {
    let x = Doc(d);
    let log: Vec<Attempt> = match d.get("log") {
        Some(b @ Bson::Array(_)) => bson::from_bson(b.clone()).context("field `log`")?,
        _ => Vec::new(),
    };
    let unread_check: Option<UnreadCheck> = match d.get("unreadCheck") {
        Some(b @ Bson::Document(_)) => Some(bson::from_bson(b.clone()).context("field `unreadCheck`")?),
        _ => None,
    };
    Ok(Delivery {
        id: x.str("_id")?,
        endpoint: x.oid("endpointId")?.into(),
        owner: x.oid("owner")?.into(),
        event_id: x.str("eventId")?,
        kind: HookEvent::parse(&x.str("kind")?).context("field `kind`")?,
        conversation: x.oid("conversationId")?.into(),
        body: x.str("body")?,
        status: DeliveryStatus::parse(&x.str("status")?).context("field `status`")?,
        attempts: i32::try_from(x.int("attempts")).unwrap_or(i32::MAX),
        next_at: x.date("nextAt").unwrap_or_default(),
        created_at: x.date("createdAt").unwrap_or_default(),
        updated_at: x.date("updatedAt").unwrap_or_default(),
        log,
        unread_check,
    })
}

/// Typed field access that reports the field on a malformed document.
struct Doc<'a>(&'a Document);

impl Doc<'_> {
    fn oid(&self, k: &str) -> anyhow::Result<ObjectId> {
        self.0.get_object_id(k).with_context(|| format!("field `{k}`"))
    }
    fn str(&self, k: &str) -> anyhow::Result<String> {
        Ok(self.0.get_str(k).with_context(|| format!("field `{k}`"))?.to_owned())
    }
    fn opt_str(&self, k: &str) -> Option<String> {
        self.0.get_str(k).ok().map(str::to_owned)
    }
    fn int(&self, k: &str) -> i64 {
        match self.0.get(k) {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            Some(Bson::Double(v)) => *v as i64,
            _ => 0,
        }
    }
    fn float(&self, k: &str) -> f64 {
        match self.0.get(k) {
            Some(Bson::Double(v)) => *v,
            Some(Bson::Int64(v)) => *v as f64,
            Some(Bson::Int32(v)) => f64::from(*v),
            _ => 0.0,
        }
    }
    fn date(&self, k: &str) -> Option<DateTime<Utc>> {
        self.0.get_datetime(k).ok().map(|d| d.to_chrono())
    }
    fn per_side(&self, k: &str) -> PerSide {
        match self.0.get_document(k) {
            Ok(d) => {
                let d = Doc(d);
                PerSide { owner: d.int("businessOwner"), customer: d.int("customer") }
            }
            Err(_) => PerSide::default(),
        }
    }
}

fn conv_from(d: &Document) -> anyhow::Result<Conversation> {
    let x = Doc(d);
    let created = x.date("createdAt").unwrap_or_default();
    // The seed's `lastMessage` is a `{content, senderId, timestamp}` sub-document;
    // our first release stored a plain string beside `lastMessageTime`. Both read.
    let (last_message, last_message_time) = match d.get("lastMessage") {
        Some(Bson::Document(lm)) => {
            let l = Doc(lm);
            (l.opt_str("content"), l.date("timestamp").or_else(|| x.date("lastMessageTime")))
        }
        Some(Bson::String(s)) => (Some(s.clone()), x.date("lastMessageTime")),
        _ => (None, None),
    };
    Ok(Conversation {
        id: x.oid("_id")?.into(),
        business_owner_id: x.oid("businessOwnerId")?.into(),
        customer_id: x.oid("customerId")?.into(),
        status: x.opt_str("status").and_then(|s| ConversationStatus::parse(&s)).unwrap_or(ConversationStatus::Active),
        tags: d
            .get_array("tags")
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        priority: x.opt_str("priority").and_then(|s| Priority::parse(&s)).unwrap_or(Priority::Normal),
        // Set together with `lastSeq` (see `append_message`).
        last_message_seq: if last_message.is_some() { x.int("lastSeq") } else { 0 },
        last_message,
        last_message_time,
        last_seq: x.int("lastSeq"),
        unread: x.per_side("unreadCount"),
        read_seq: x.per_side("readSeq"),
        created_at: created,
        updated_at: x.date("updatedAt").unwrap_or(created),
    })
}

fn msg_from(d: &Document) -> anyhow::Result<Message> {
    let x = Doc(d);
    // The Node service only sets `isDeleted`: what it left behind is not served.
    let deleted = d.get_bool("isDeleted").unwrap_or(false);
    let attachments: Vec<Attachment> = match d.get("attachments") {
        Some(b @ Bson::Array(_)) if !deleted => bson::from_bson(b.clone()).context("field `attachments`")?,
        _ => Vec::new(),
    };
    Ok(Message {
        id: x.oid("_id")?.into(),
        conversation_id: x.oid("conversationId")?.into(),
        seq: x.int("seq"),
        sender_id: match d.get("senderId") {
            Some(Bson::ObjectId(o)) => o.to_hex(),
            Some(Bson::String(s)) => s.clone(),
            _ => anyhow::bail!("field `senderId`"),
        },
        sender_side: sender_side(d),
        sender_name: x.opt_str("senderName").unwrap_or_default(),
        content: if deleted { String::new() } else { x.str("content")? },
        attachments,
        client_message_id: x.opt_str("clientMessageId"),
        status: x.opt_str("status").and_then(|s| MessageStatus::parse(&s)).unwrap_or(MessageStatus::Sent),
        created_at: x.date("createdAt").unwrap_or_default(),
        edited_at: x.date("editedAt"),
        deleted,
    })
}

fn reply_from(d: &Document) -> anyhow::Result<QuickReply> {
    let x = Doc(d);
    Ok(QuickReply {
        id: x.oid("_id")?.into(),
        owner: x.oid("owner")?.into(),
        shortcut: Shortcut::parse(&x.str("shortcut")?).map_err(anyhow::Error::msg)?,
        content: x.str("content")?,
        created_at: x.date("createdAt").unwrap_or_default(),
        updated_at: x.date("updatedAt").unwrap_or_default(),
    })
}

fn upload_doc(u: &Upload) -> Document {
    doc! {
        "_id": u.id.oid(), "conversationId": u.conversation_id.oid(), "uploaderId": &u.uploader_id,
        "uploaderRole": u.uploader_side.role_name(), "name": &u.name, "type": &u.mime_type,
        "size": u.size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)), "hasThumbnail": u.has_thumbnail,
        "createdAt": date(u.created_at), "claim": u.claim.clone(), "messageId": u.message_id.map(|m| m.oid()),
        "confirmed": u.confirmed,
    }
}

fn upload_from(d: &Document) -> anyhow::Result<Upload> {
    let x = Doc(d);
    Ok(Upload {
        id: x.oid("_id")?.into(),
        conversation_id: x.oid("conversationId")?.into(),
        uploader_id: x.str("uploaderId")?,
        uploader_side: x
            .opt_str("uploaderRole")
            .and_then(|r| Side::from_role_name(&r))
            .context("field `uploaderRole`")?,
        name: x.str("name")?,
        mime_type: x.str("type")?,
        size: match d.get("size") {
            Some(Bson::Int64(n)) => Some(u64::try_from(*n).unwrap_or(0)),
            Some(Bson::Int32(n)) => Some(u64::try_from(*n).unwrap_or(0)),
            _ => None,
        },
        has_thumbnail: d.get_bool("hasThumbnail").unwrap_or(false),
        created_at: x.date("createdAt").unwrap_or_default(),
        claim: x.opt_str("claim"),
        message_id: d.get_object_id("messageId").ok().map(Into::into),
        confirmed: d.get_bool("confirmed").unwrap_or(false),
    })
}

/// Which side sent a message: the seed's `senderModel` ("User"/"Customer")
/// when present, else `senderRole` (our first release wrote only that).
fn sender_side(d: &Document) -> Side {
    let x = Doc(d);
    x.opt_str("senderModel")
        .and_then(|s| Side::from_model_name(&s))
        .or_else(|| x.opt_str("senderRole").and_then(|s| Side::from_role_name(&s)))
        .unwrap_or(Side::Customer)
}

/// Whether a message document was sent from `side`: the seed's `senderModel`
/// (`User`/`Customer`) when present, else `senderRole` (our first release wrote only that).
fn is_from(d: &Document, side: Side) -> bool {
    match d.get_str("senderModel") {
        Ok(model) => model == side.model_name(),
        Err(_) => {
            let roles: &[&str] = match side {
                Side::Owner => &["business_owner", "admin"],
                Side::Customer => &["customer"],
            };
            d.get_str("senderRole").is_ok_and(|r| roles.contains(&r))
        }
    }
}

fn cust_from(d: &Document) -> anyhow::Result<Customer> {
    let x = Doc(d);
    Ok(Customer {
        id: x.oid("_id")?.into(),
        name: x.str("name")?,
        email: x.opt_str("email").unwrap_or_default(),
        phone: x.opt_str("phone"),
        invited_by: x.oid("invitedBy")?.into(),
        total_orders: x.int("totalOrders"),
        total_spent: x.float("totalSpent"),
        last_order_date: x.date("lastOrderDate"),
        last_login: x.date("lastLogin"),
        created_at: x.date("createdAt").or_else(|| x.date("joinedDate")).unwrap_or_default(),
    })
}

fn cust_doc(c: &Customer) -> Document {
    doc! {
        "_id": c.id.oid(), "name": &c.name, "email": &c.email, "phone": c.phone.clone(),
        "invitedBy": c.invited_by.oid(), "totalOrders": c.total_orders, "totalSpent": c.total_spent,
        "lastOrderDate": c.last_order_date.map(date), "lastLogin": c.last_login.map(date),
        "createdAt": date(c.created_at), "updatedAt": date(c.created_at),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

async fn collect(what: &'static str, cursor: mongodb::Cursor<Document>) -> StoreResult<Vec<Document>> {
    cursor.try_collect().await.map_err(|e| classify(what, e))
}

impl MongoStore {
    /// Reverts the conversation update of an append whose message turned out
    /// to be stored already (a retried `clientMessageId`): the unread bump,
    /// and, while no other send has taken a seq since, the seq itself and
    /// `lastMessage`/`lastMessageTime`/`activityAt` (from the newest stored
    /// message), so a retry leaves no gap and no stale preview. When another
    /// send got in between, its update already replaced those fields; our
    /// seq stays unused (seqs strictly increase, gaps are allowed; gateways
    /// stop waiting for it after a few seconds).
    async fn undo_append(&self, id: ConversationId, seq: i64, unread_key: &str) -> StoreResult<()> {
        let what = "undoing a retried append";
        let conv = id.oid();
        // The newest message below ours: in the 64 seqs below first (an
        // index range), else anywhere. A retry means one is stored.
        let near = MessageQuery { conversation_id: id, before: Some(seq), after: Some((seq - 64).max(0)), limit: 64 };
        let mut newest = self.list_messages(&near).await?.pop();
        if newest.is_none() {
            let any = MessageQuery { conversation_id: id, before: Some(seq), after: None, limit: 1 };
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
            appends,
            db,
        };
        Ok(store)
    }

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

#[async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map(drop).map_err(|e| classify("pinging MongoDB", e))
    }

    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let d = doc! {
            "_id": u.id.oid(), "name": &u.name, "email": &u.email, "phone": u.phone.clone(),
            "role": u.role.as_str(), "businessName": u.business_name.clone(),
        };
        self.users
            .replace_one(doc! {"_id": u.id.oid()}, d)
            .upsert(true)
            .await
            .map(drop)
            .map_err(|e| classify("inserting a user", e))
    }

    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()> {
        if customers.is_empty() {
            return Ok(());
        }
        self.customers
            .insert_many(customers.iter().map(cust_doc))
            .ordered(false)
            .await
            .map(drop)
            .map_err(|e| classify("inserting customers", e))
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let what = "reading a user";
        let Some(d) = self.users.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))? else {
            return Ok(None);
        };
        let x = Doc(&d);
        Ok(Some(User {
            id,
            name: x.str("name").context(what)?,
            email: x.opt_str("email").unwrap_or_default(),
            phone: x.opt_str("phone"),
            role: UserRole::parse(&x.opt_str("role").unwrap_or_default()),
            business_name: x.opt_str("businessName"),
        }))
    }

    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>> {
        let what = "reading a customer";
        match self.customers.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))? {
            Some(d) => Ok(Some(cust_from(&d).context(what)?)),
            None => Ok(None),
        }
    }

    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>> {
        let what = "reading customers";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let oids: Vec<ObjectId> = ids.iter().map(CustomerId::oid).collect();
        let cursor = self.customers.find(doc! {"_id": {"$in": oids}}).await.map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| cust_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn list_customers(&self, q: &CustomerQuery) -> StoreResult<Vec<Customer>> {
        let what = "listing customers";
        let mut filter = doc! {"invitedBy": q.owner.oid()};
        if let Some(before) = q.before {
            filter.insert("_id", doc! {"$lt": before.oid()});
        }
        if let Some(term) = &q.q {
            let re = regex_escape(term);
            let m = |f: &str| doc! { f: {"$regex": &re, "$options": "i"} };
            filter.insert("$or", vec![m("name"), m("email"), m("phone")]);
        }
        let cursor = self
            .customers
            .find(filter)
            .sort(doc! {"_id": -1})
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| cust_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn get_or_create_conversation(
        &self,
        who: &Participants,
        now: DateTime<Utc>,
    ) -> StoreResult<(Conversation, bool)> {
        let what = "creating a conversation";
        let fresh = Conversation::new(who.owner, who.customer, now);
        let pair = doc! {"businessOwnerId": who.owner.oid(), "customerId": who.customer.oid()};
        // What the seed's Conversation model writes (names, unreadCount, status,
        // tags, priority, timestamps, `__v`), plus our `lastSeq`, `readSeq`
        // and `activityAt`. `lastMessage` stays unset until the first message.
        let on_insert = doc! {
            "_id": fresh.id.oid(),
            "businessOwnerName": &who.owner_name, "customerName": &who.customer_name,
            "customerEmail": &who.customer_email, "customerPhone": who.customer_phone.clone(),
            "unreadCount": {"businessOwner": 0_i32, "customer": 0_i32},
            "status": fresh.status.as_str(), "tags": Vec::<String>::new(), "priority": fresh.priority.as_str(),
            "lastSeq": 0_i64,
            "readSeq": {"businessOwner": 0_i64, "customer": 0_i64},
            "createdAt": date(now), "updatedAt": date(now), "activityAt": date(now), "__v": 0_i32,
            // The webhook outbox entry for `conversation.created`, atomic with the insert.
            "hooks": {new_event_id(): hook_entry(HookEvent::ConversationCreated, now, doc! {})},
            "hookPending": true,
        };
        let result = self
            .conversations
            .find_one_and_update(pair.clone(), doc! {"$setOnInsert": on_insert})
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(d)) => {
                let conv = conv_from(&d).context(what)?;
                let created = conv.id == fresh.id;
                return Ok((conv, created));
            }
            // A concurrent upsert won the race: read the winner's document.
            Ok(None) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(classify(what, e)),
        }
        let conv = self.find_conv(pair).await?.context("conversation vanished after a concurrent create")?;
        Ok((conv, false))
    }

    async fn get_conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        self.find_conv(doc! {"_id": id.oid()}).await
    }

    async fn list_conversations(&self, q: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        let mut filter = match q.party {
            Party::Owner(id) => doc! {"businessOwnerId": id.oid()},
            Party::Customer(id) => doc! {"customerId": id.oid()},
        };
        if let Some(cur) = q.before {
            let at = date(cur.at);
            filter.insert(
                "$or",
                vec![doc! {"activityAt": {"$lt": at}}, doc! {"activityAt": at, "_id": {"$lt": cur.id.oid()}}],
            );
        }
        if let Some(customers) = &q.customers {
            if customers.is_empty() {
                return Ok(Vec::new());
            }
            let oids: Vec<ObjectId> = customers.iter().map(CustomerId::oid).collect();
            filter.insert("customerId", doc! {"$in": oids});
        }
        self.find_convs(filter, Some(q.limit)).await
    }

    async fn conversations_with(&self, owner: UserId, customers: &[CustomerId]) -> StoreResult<Vec<Conversation>> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let oids: Vec<ObjectId> = customers.iter().map(CustomerId::oid).collect();
        self.find_convs(doc! {"businessOwnerId": owner.oid(), "customerId": {"$in": oids}}, None).await
    }

    async fn update_conversation(
        &self,
        id: ConversationId,
        patch: &ConversationPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Conversation>> {
        let what = "updating a conversation";
        let mut set = doc! {"updatedAt": date(now)};
        let mut changes = doc! {};
        if let Some(s) = patch.status {
            set.insert("status", s.as_str());
            changes.insert("status", s.as_str());
        }
        if let Some(p) = patch.priority {
            set.insert("priority", p.as_str());
            changes.insert("priority", p.as_str());
        }
        if let Some(t) = &patch.tags {
            set.insert("tags", t.clone());
            changes.insert("tags", t.clone());
        }
        // The webhook outbox entry for `conversation.updated`, atomic with the change.
        set.insert(format!("hooks.{}", new_event_id()), hook_entry(HookEvent::ConversationUpdated, now, changes));
        set.insert("hookPending", true);
        let d = self
            .conversations
            .find_one_and_update(doc! {"_id": id.oid()}, doc! {"$set": set})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(conv_from(&d).context(what)?),
            None => None,
        })
    }

    async fn append_message(&self, m: NewMessage) -> StoreResult<Option<Appended>> {
        let what = "appending a message";
        let conv = m.conversation_id.oid();
        let sender_oid = ObjectId::parse_str(&m.sender_id).context("sender id")?;
        let party_key = match m.sender_side {
            Side::Owner => "businessOwnerId",
            Side::Customer => "customerId",
        };
        let unread_key = format!("unreadCount.{}", side_key(m.sender_side.other()));
        let at = date(m.created_at);
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
                doc! {"_id": conv, party_key: sender_oid, "status": {"$ne": "blocked"}},
                doc! {
                    "$inc": {"lastSeq": 1_i64, &unread_key: 1_i32},
                    "$set": {
                        "lastMessage": {"content": &m.content, "senderId": sender_oid, "timestamp": at},
                        "lastMessageTime": at, "activityAt": at, "updatedAt": at,
                    },
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
        if let Err(e) = self.appends.inserter.insert(d).await {
            if let (true, Some(cmid)) = (e.is_duplicate_key(), &msg.client_message_id) {
                // A retry of a stored message, found by the unique index rather
                // than by a lookup before every send (a round trip each, for
                // the rare retry). Put back what our update changed, and return
                // the stored message.
                self.undo_append(msg.conversation_id, seq, &unread_key).await?;
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
        let filter = doc! {"conversationId": q.conversation_id.oid(), "seq": range};
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
        let event =
            hook_entry(HookEvent::MessageRead, Utc::now(), doc! {"readerRole": reader.role_name(), "upToSeq": up_to});
        let advanced = self
            .conversations
            .find_one_and_update(
                doc! {"_id": conv, &read_key: {"$not": {"$gte": up_to}}},
                doc! {"$max": {&read_key: up_to}, "$set": {format!("hooks.{}", new_event_id()): event, "hookPending": true}},
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
                .projection(doc! {"_id": 1, "seq": 1, "senderModel": 1, "senderRole": 1, "status": 1, "isDeleted": 1})
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
            } else if !d.get_bool("isDeleted").unwrap_or(false) {
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
        self.conversations
            .update_one(
                doc! {"_id": m.conversation_id.oid(), "lastSeq": m.seq, "lastMessage": {"$type": "object"}},
                doc! {"$set": {"lastMessage.content": content}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(Some(m))
    }

    async fn delete_message(
        &self,
        id: MessageId,
        conversation: ConversationId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let what = "deleting a message";
        let set =
            doc! {"content": "", "attachments": [], "isDeleted": true, "editedAt": date(at), "updatedAt": date(at)};
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
        self.conversations
            .update_one(
                doc! {"_id": conv, "lastSeq": m.seq, "lastMessage": {"$type": "object"}},
                doc! {"$set": {"lastMessage.content": DELETED_PREVIEW}},
            )
            .await
            .map_err(|e| classify(what, e))?;
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

    async fn insert_upload(&self, u: &Upload) -> StoreResult<()> {
        self.uploads.insert_one(upload_doc(u)).await.map_err(|e| classify("recording an upload", e))?;
        Ok(())
    }

    async fn finish_upload(&self, id: UploadId, mime_type: &str, size: u64, has_thumbnail: bool) -> StoreResult<bool> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let r = self
            .uploads
            .update_one(
                doc! {"_id": id.oid()},
                doc! {"$set": {"type": mime_type, "size": size, "hasThumbnail": has_thumbnail}},
            )
            .await
            .map_err(|e| classify("recording an upload", e))?;
        Ok(r.matched_count == 1)
    }

    async fn get_upload(&self, id: UploadId) -> StoreResult<Option<Upload>> {
        let what = "reading an upload";
        let d = self.uploads.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(upload_from(&d).context(what)?),
            None => None,
        })
    }

    async fn claim_upload(
        &self,
        id: UploadId,
        conversation: ConversationId,
        uploader: &str,
        key: &str,
    ) -> StoreResult<Option<Upload>> {
        let what = "claiming an upload";
        let d = self
            .uploads
            .find_one_and_update(
                doc! {
                    "_id": id.oid(), "conversationId": conversation.oid(), "uploaderId": uploader,
                    "size": {"$type": "number"},
                    "$or": [{"claim": null, "confirmed": false}, {"claim": key}],
                },
                doc! {"$set": {"claim": key}},
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(upload_from(&d).context(what)?),
            None => None,
        })
    }

    async fn confirm_uploads(&self, ids: &[UploadId], message: MessageId) -> StoreResult<()> {
        let ids: Vec<ObjectId> = ids.iter().map(UploadId::oid).collect();
        self.uploads
            .update_many(doc! {"_id": {"$in": ids}}, doc! {"$set": {"messageId": message.oid(), "confirmed": true}})
            .await
            .map_err(|e| classify("confirming uploads", e))?;
        Ok(())
    }

    async fn unconfirm_uploads(&self, ids: &[UploadId]) -> StoreResult<()> {
        let ids: Vec<ObjectId> = ids.iter().map(UploadId::oid).collect();
        self.uploads
            .update_many(doc! {"_id": {"$in": ids}}, doc! {"$set": {"confirmed": false}})
            .await
            .map_err(|e| classify("releasing uploads", e))?;
        Ok(())
    }

    async fn stale_uploads(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Upload>> {
        let what = "listing stale uploads";
        let cursor = self
            .uploads
            .find(doc! {"confirmed": false, "createdAt": {"$lt": date(before)}})
            .sort(doc! {"confirmed": 1, "createdAt": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| upload_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn message_with_upload(&self, conversation: ConversationId, id: UploadId) -> StoreResult<Option<MessageId>> {
        let what = "looking for an upload's message";
        let d = self
            .messages
            .find_one(doc! {"conversationId": conversation.oid(), "attachments.id": id.to_hex()})
            .projection(doc! {"_id": 1})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(d.and_then(|d| d.get_object_id("_id").ok()).map(Into::into))
    }

    async fn delete_upload(&self, id: UploadId) -> StoreResult<()> {
        self.uploads.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify("deleting an upload", e))?;
        Ok(())
    }

    async fn insert_quick_reply(&self, r: &QuickReply) -> StoreResult<bool> {
        let d = doc! {
            "_id": r.id.oid(), "owner": r.owner.oid(), "shortcut": r.shortcut.as_str(), "content": &r.content,
            "createdAt": date(r.created_at), "updatedAt": date(r.updated_at),
        };
        match self.replies.insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(classify("saving a quick reply", e)),
        }
    }

    async fn list_quick_replies(&self, owner: UserId) -> StoreResult<Vec<QuickReply>> {
        let what = "listing quick replies";
        let cursor = self
            .replies
            .find(doc! {"owner": owner.oid()})
            .sort(doc! {"shortcut": 1})
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| reply_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn get_quick_reply(&self, id: QuickReplyId) -> StoreResult<Option<QuickReply>> {
        let what = "reading a quick reply";
        let d = self.replies.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(reply_from(&d).context(what)?),
            None => None,
        })
    }

    async fn find_quick_reply(&self, owner: UserId, shortcut: &str) -> StoreResult<Option<QuickReply>> {
        let what = "reading a quick reply";
        let d = self
            .replies
            .find_one(doc! {"owner": owner.oid(), "shortcut": shortcut})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(match d {
            Some(d) => Some(reply_from(&d).context(what)?),
            None => None,
        })
    }

    async fn save_quick_reply(&self, r: &QuickReply) -> StoreResult<Option<bool>> {
        let update = doc! {"$set": {
            "shortcut": r.shortcut.as_str(), "content": &r.content, "updatedAt": date(r.updated_at),
        }};
        match self.replies.update_one(doc! {"_id": r.id.oid()}, update).await {
            Ok(u) if u.matched_count == 0 => Ok(None),
            Ok(_) => Ok(Some(true)),
            Err(e) if is_duplicate_key(&e) => Ok(Some(false)),
            Err(e) => Err(classify("saving a quick reply", e)),
        }
    }

    async fn delete_quick_reply(&self, id: QuickReplyId) -> StoreResult<bool> {
        let r =
            self.replies.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify("deleting a quick reply", e))?;
        Ok(r.deleted_count == 1)
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
        let owner_filter = match party {
            Party::Owner(u) => doc! {"businessOwnerId": u.oid()},
            Party::Customer(c) => doc! {"customerId": c.oid()},
        };
        let convs = collect(
            what,
            self.conversations.find(owner_filter).projection(doc! {"_id": 1}).await.map_err(|e| classify(what, e))?,
        )
        .await?;
        let ids: Vec<ObjectId> = convs.iter().filter_map(|d| d.get_object_id("_id").ok()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let terms: Vec<Document> = query
            .terms
            .iter()
            .map(|t| {
                let pattern = t.words().iter().map(|w| regex_escape(w)).collect::<Vec<_>>().join(".*?");
                doc! {"content": {"$regex": pattern, "$options": "i"}}
            })
            .collect();
        let mut filter = doc! {
            "conversationId": {"$in": ids}, "seq": {"$gt": 0_i64}, "isDeleted": {"$ne": true}, "$and": terms,
        };
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
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| msg_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        self.endpoints.insert_one(endpoint_doc(e)).await.map_err(|e| classify("creating a webhook endpoint", e))?;
        Ok(())
    }

    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>> {
        let what = "listing webhook endpoints";
        let docs = collect(
            what,
            self.endpoints
                .find(doc! {"owner": owner.oid()})
                .sort(doc! {"_id": 1})
                .await
                .map_err(|e| classify(what, e))?,
        )
        .await?;
        Ok(docs.iter().map(endpoint_from).collect::<anyhow::Result<_>>().context(what)?)
    }

    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>> {
        let what = "reading a webhook endpoint";
        let d = self.endpoints.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(d.as_ref().map(endpoint_from).transpose().context(what)?)
    }

    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool> {
        let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
        let r = self
            .endpoints
            .update_one(
                doc! {"_id": e.id.oid()},
                doc! {"$set": {
                    "url": &e.url, "events": events, "description": &e.description, "enabled": e.enabled,
                    "disabledReason": e.disabled_reason.clone(), "failureStreak": e.failure_streak,
                    "updatedAt": date(e.updated_at),
                }},
            )
            .await
            .map_err(|e| classify("saving a webhook endpoint", e))?;
        Ok(r.matched_count == 1)
    }

    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool> {
        let what = "deleting a webhook endpoint";
        let r = self.endpoints.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        self.deliveries.delete_many(doc! {"endpointId": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(r.deleted_count == 1)
    }

    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64> {
        let what = "counting a webhook attempt";
        let update = if ok {
            doc! {"$set": {"failureStreak": 0_i64}}
        } else {
            doc! {"$inc": {"failureStreak": 1_i64}}
        };
        let d = self
            .endpoints
            .find_one_and_update(doc! {"_id": id.oid()}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(d.map_or(0, |d| Doc(&d).int("failureStreak")))
    }

    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let what = "disabling a webhook endpoint";
        let r = self
            .endpoints
            .update_one(
                doc! {"_id": id.oid(), "enabled": true},
                doc! {"$set": {"enabled": false, "disabledReason": reason, "updatedAt": date(now)}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        if r.modified_count == 1 {
            self.move_deliveries(id, DeliveryStatus::Pending, DeliveryStatus::Paused, now).await?;
        }
        Ok(r.modified_count == 1)
    }

    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let what = "reading the webhook outbox";
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        // No sort: a sort on `_id` can have the server walk the `_id` index
        // past every message ever stored to find the few pending ones, or
        // sort the whole pending set under a backlog; the `hook` index alone
        // serves this filter, and a pass's events are ordered below anyway.
        let msgs =
            collect(what, self.messages.find(doc! {"hook": true}).limit(limit_i).await.map_err(|e| classify(what, e))?)
                .await?;
        let mut events = Vec::with_capacity(msgs.len());
        for d in &msgs {
            let m = msg_from(d).context(what)?;
            events.push(OutboxEvent {
                id: format!("msg_{}", m.id.to_hex()),
                kind: HookEvent::MessageCreated,
                conversation: m.conversation_id,
                at: m.created_at,
                data: serde_json::to_value(MessageView::from(&m)).unwrap_or_default(),
            });
        }
        // Conversations, and edited or deleted messages, carry their events in a `hooks` map.
        let convs = pending_hooks(&self.conversations, "_id", limit_i).await?;
        let changed = pending_hooks(&self.messages, "conversationId", limit_i).await?;
        let owners = convs.iter().map(|d| (d, "_id")).chain(changed.iter().map(|d| (d, "conversationId")));
        for (d, conv_field) in owners {
            let conversation: ConversationId = Doc(d).oid(conv_field).context(what)?.into();
            let Ok(hooks) = d.get_document("hooks") else { continue };
            for (id, entry) in hooks {
                let Some(entry) = entry.as_document() else { continue };
                let e = Doc(entry);
                let Some(kind) = e.opt_str("kind").and_then(|k| HookEvent::parse(&k)) else { continue };
                let data = entry.get_document("data").cloned().unwrap_or_default();
                events.push(OutboxEvent {
                    id: id.clone(),
                    kind,
                    conversation,
                    at: e.date("at").unwrap_or_default(),
                    data: Bson::Document(data).into_relaxed_extjson(),
                });
            }
        }
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        events.truncate(limit);
        Ok(events)
    }

    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()> {
        self.fan_out_all(&[(event.clone(), deliveries.to_vec())]).await
    }

    /// One `insert_many` for every delivery of the pass and one `update_many`
    /// clearing its message events — not a write per message, which the
    /// outbox would otherwise add to every send even for owners without endpoints.
    async fn fan_out_all(&self, batch: &[(OutboxEvent, Vec<Delivery>)]) -> StoreResult<()> {
        let what = "fanning out webhook events";
        let docs =
            batch.iter().flat_map(|(_, d)| d).map(delivery_doc).collect::<anyhow::Result<Vec<_>>>().context(what)?;
        // Deliveries have deterministic ids: those a previous, interrupted fan-out stored stay as they are.
        if !docs.is_empty()
            && let Err(e) = self.deliveries.insert_many(docs).ordered(false).await
            && !only_duplicates(&e)
        {
            return Err(classify(what, e));
        }
        let messages = batch
            .iter()
            .filter_map(|(e, _)| e.id.strip_prefix("msg_"))
            .map(ObjectId::parse_str)
            .collect::<Result<Vec<_>, _>>()
            .context("message event id")?;
        if !messages.is_empty() {
            self.messages
                .update_many(doc! {"_id": {"$in": messages}}, doc! {"$unset": {"hook": ""}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        for (event, _) in batch.iter().filter(|(e, _)| !e.id.starts_with("msg_")) {
            // A message change's id names its message (`upd_<id>_…`, `del_<id>_…`); others live on the conversation.
            let owner = event
                .id
                .strip_prefix("upd_")
                .or_else(|| event.id.strip_prefix("del_"))
                .and_then(|rest| rest.split('_').next())
                .and_then(|hex| ObjectId::parse_str(hex).ok());
            let (coll, key) = match owner {
                Some(message) => (&self.messages, message),
                None => (&self.conversations, event.conversation.oid()),
            };
            coll.update_one(doc! {"_id": key}, doc! {"$unset": {format!("hooks.{}", event.id): ""}})
                .await
                .map_err(|e| classify(what, e))?;
            // The flag goes only when no other event is waiting; one written
            // meanwhile set it again in its own update.
            coll.update_one(doc! {"_id": key, "hooks": {}}, doc! {"$unset": {"hookPending": "", "hooks": ""}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let what = "claiming webhook deliveries";
        let mut out = Vec::new();
        while out.len() < limit {
            let claimed = self
                .deliveries
                .find_one_and_update(
                    doc! {
                        "status": "pending", "nextAt": {"$lte": date(now)},
                        "$or": [{"leaseUntil": null}, {"leaseUntil": {"$lte": date(now)}}],
                    },
                    doc! {"$set": {"leaseUntil": date(lease_until), "leaseHolder": holder}},
                )
                .sort(doc! {"nextAt": 1})
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| classify(what, e))?;
            match claimed {
                // A lease that ends before `now` would match again: never hand one out twice.
                Some(d) if !out.iter().any(|x: &Delivery| Some(x.id.as_str()) == d.get_str("_id").ok()) => {
                    out.push(delivery_from(&d).context(what)?);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let what = "recording a webhook attempt";
        let r = self
            .deliveries
            .update_one(
                doc! {"_id": &d.id, "leaseHolder": holder},
                doc! {"$set": {
                    "status": d.status.as_str(), "attempts": d.attempts, "nextAt": date(d.next_at),
                    "log": bson::to_bson(&d.log).context("encoding the attempt log")?, "updatedAt": date(now),
                    "leaseUntil": Bson::Null, "leaseHolder": Bson::Null,
                }},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(r.matched_count == 1)
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let what = "listing webhook deliveries";
        let mut filter = doc! {"endpointId": endpoint.oid()};
        if let Some((at, id)) = before {
            filter.insert(
                "$or",
                vec![doc! {"createdAt": {"$lt": date(at)}}, doc! {"createdAt": date(at), "_id": {"$lt": id}}],
            );
        }
        let docs = collect(
            what,
            self.deliveries
                .find(filter)
                .sort(doc! {"createdAt": -1, "_id": -1})
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .await
                .map_err(|e| classify(what, e))?,
        )
        .await?;
        Ok(docs.iter().map(delivery_from).collect::<anyhow::Result<_>>().context(what)?)
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let what = "reading a webhook delivery";
        let d = self.deliveries.find_one(doc! {"_id": id}).await.map_err(|e| classify(what, e))?;
        Ok(d.as_ref().map(delivery_from).transpose().context(what)?)
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let r = self
            .deliveries
            .update_one(
                doc! {"_id": id},
                doc! {"$set": {
                    "status": "pending", "nextAt": date(now), "updatedAt": date(now), "unreadCheck": Bson::Null,
                    "leaseUntil": Bson::Null, "leaseHolder": Bson::Null,
                }},
            )
            .await
            .map_err(|e| classify("redelivering a webhook", e))?;
        Ok(r.matched_count == 1)
    }

    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let r = self
            .deliveries
            .update_many(
                doc! {"endpointId": endpoint.oid(), "status": from.as_str()},
                doc! {"$set": {"status": to.as_str(), "updatedAt": date(now)}, "$min": {"nextAt": date(now)}},
            )
            .await
            .map_err(|e| classify("moving webhook deliveries", e))?;
        Ok(r.modified_count)
    }
}

/// An `insert_many` that failed only because some documents already existed.
fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::InsertMany(im) => {
            im.write_concern_error.is_none() && im.write_errors.iter().flatten().all(|we| we.code == 11000)
        }
        _ => is_duplicate_key(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_side_comes_from_sender_model_then_sender_role() {
        let side = |d: Document| sender_side(&d);
        assert_eq!(side(doc! {"senderModel": "User", "senderRole": "customer"}), Side::Owner, "senderModel wins");
        assert_eq!(side(doc! {"senderModel": "Customer"}), Side::Customer);
        assert_eq!(side(doc! {"senderRole": "admin"}), Side::Owner, "an admin is on the business side");
        assert_eq!(side(doc! {"senderRole": "business_owner"}), Side::Owner, "our first release's documents");
    }

    #[test]
    fn index_specs_compare_with_what_list_indexes_returns() {
        let spec = IndexSpec::new(doc! {"conversationId": 1, "seq": 1}).unique().only_with("seq");
        assert_eq!(spec.name(), "conversationId_1_seq_1");
        let full = IndexModel::builder()
            .keys(doc! {"conversationId": 1_i32, "seq": 1_i32})
            .options(IndexOptions::builder().name("conversationId_1_seq_1".to_owned()).unique(true).build())
            .build();
        assert!(spec.named_like(&full) && !spec.matches(&full), "the earlier full unique index is stale");
        let partial = IndexModel::builder().keys(spec.keys.clone()).options(spec.options()).build();
        assert!(spec.matches(&partial));
    }
}
