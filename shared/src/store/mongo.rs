//! MongoDB store (`mongodb` 3 driver).
//!
//! Collections and fields follow the seed's schema: `users`, `customers` (read;
//! the main app owns them), `conversations`, `messages`, with camelCase fields.
//! Additions: `conversations.lastSeq` (per-conversation message counter, bumped
//! with `findOneAndUpdate` + `$inc`), `activityAt` (list ordering), `readSeq`,
//! and `messages.seq`. The same atomic update that takes the next `seq` also
//! sets `lastMessage`, `lastMessageTime` and `activityAt`: one round trip less
//! per send, and `lastMessage` is always that of the highest `seq` however
//! concurrent writers interleave.
//!
//! Indexes, created idempotently at start:
//! - `conversations {businessOwnerId, customerId}` unique;
//! - `conversations {businessOwnerId, activityAt:-1, _id:-1}` and
//!   `{customerId, activityAt:-1, _id:-1}` for the lists;
//! - `messages {conversationId, seq}` unique;
//! - `messages {conversationId, clientMessageId}` unique where present;
//! - `customers {invitedBy, _id:-1}`.
//!
//! Shard key for large deployments: hashed `conversationId` on `messages`.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound as _, Utc};
use futures_util::TryStreamExt as _;
use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};

use super::{
    Appended, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery, NewMessage, Party, ReadOutcome, Store,
    StoreError, StoreResult,
};
use crate::domain::{
    Attachment, Conversation, ConversationId, ConversationStatus, Customer, CustomerId, Message, MessageId,
    MessageStatus, PerSide, Priority, Side, User, UserId, UserRole,
};

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
}

fn classify(what: &'static str, e: mongodb::error::Error) -> StoreError {
    metrics::counter!("store_errors_total", "backend" => "mongodb").increment(1);
    let unavailable = matches!(
        *e.kind,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
    );
    let err = anyhow::Error::new(e).context(what);
    if unavailable { StoreError::Unavailable(err) } else { StoreError::Other(err) }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == 11000,
        ErrorKind::Command(ce) => ce.code == 11000,
        ErrorKind::InsertMany(im) => im.write_errors.iter().flatten().any(|we| we.code == 11000),
        _ => false,
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
        last_message: x.opt_str("lastMessage"),
        last_message_time: x.date("lastMessageTime"),
        // Set together with `lastSeq` (see `append_message`).
        last_message_seq: if x.opt_str("lastMessage").is_some() { x.int("lastSeq") } else { 0 },
        last_seq: x.int("lastSeq"),
        unread: x.per_side("unreadCount"),
        read_seq: x.per_side("readSeq"),
        created_at: created,
        updated_at: x.date("updatedAt").unwrap_or(created),
    })
}

fn msg_from(d: &Document) -> anyhow::Result<Message> {
    let x = Doc(d);
    let attachments: Vec<Attachment> = match d.get("attachments") {
        Some(b @ Bson::Array(_)) => bson::from_bson(b.clone()).context("field `attachments`")?,
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
        sender_side: x.opt_str("senderRole").and_then(|s| Side::from_role_name(&s)).unwrap_or(Side::Customer),
        sender_name: x.opt_str("senderName").unwrap_or_default(),
        content: x.str("content")?,
        attachments,
        client_message_id: x.opt_str("clientMessageId"),
        status: x.opt_str("status").and_then(|s| MessageStatus::parse(&s)).unwrap_or(MessageStatus::Sent),
        created_at: x.date("createdAt").unwrap_or_default(),
    })
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
        created_at: x.date("createdAt").unwrap_or_default(),
    })
}

fn cust_doc(c: &Customer) -> Document {
    doc! {
        "_id": c.id.oid(), "name": &c.name, "email": &c.email, "phone": c.phone.clone(),
        "invitedBy": c.invited_by.oid(), "totalOrders": c.total_orders, "totalSpent": c.total_spent,
        "lastOrderDate": c.last_order_date.map(date), "createdAt": date(c.created_at),
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
    /// Connects lazily (the driver retries in the background) and creates the
    /// indexes. Fails when the server cannot be reached within the timeout.
    pub async fn connect(uri: &str, database: Option<&str>) -> anyhow::Result<Self> {
        let mut opts = ClientOptions::parse(uri).await.context("parsing MONGODB_URI")?;
        opts.app_name = Some("omnibiz".into());
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        opts.connect_timeout = Some(Duration::from_secs(5));
        let name = database
            .map(str::to_owned)
            .or_else(|| opts.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(opts).context("creating the MongoDB client")?;
        let db = client.database(&name);
        let store = Self {
            users: db.collection("users"),
            customers: db.collection("customers"),
            conversations: db.collection("conversations"),
            messages: db.collection("messages"),
            db,
        };
        Ok(store)
    }

    /// Creates every index the store relies on (idempotent).
    pub async fn ensure_indexes(&self) -> StoreResult<()> {
        let unique = || IndexOptions::builder().unique(true).build();
        let idx =
            |keys: Document, options: Option<IndexOptions>| IndexModel::builder().keys(keys).options(options).build();
        let what = "creating indexes";
        self.conversations
            .create_indexes([
                idx(doc! {"businessOwnerId": 1, "customerId": 1}, Some(unique())),
                idx(doc! {"businessOwnerId": 1, "activityAt": -1, "_id": -1}, None),
                idx(doc! {"customerId": 1, "activityAt": -1, "_id": -1}, None),
            ])
            .await
            .map_err(|e| classify(what, e))?;
        let partial = IndexOptions::builder()
            .unique(true)
            .partial_filter_expression(doc! {"clientMessageId": {"$exists": true}})
            .build();
        self.messages
            .create_indexes([
                idx(doc! {"conversationId": 1, "seq": 1}, Some(unique())),
                idx(doc! {"conversationId": 1, "clientMessageId": 1}, Some(partial)),
            ])
            .await
            .map_err(|e| classify(what, e))?;
        self.customers
            .create_index(idx(doc! {"invitedBy": 1, "_id": -1}, None))
            .await
            .map_err(|e| classify(what, e))?;
        Ok(())
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
        owner: UserId,
        customer: CustomerId,
        now: DateTime<Utc>,
    ) -> StoreResult<(Conversation, bool)> {
        let what = "creating a conversation";
        let fresh = Conversation::new(owner, customer, now);
        let pair = doc! {"businessOwnerId": owner.oid(), "customerId": customer.oid()};
        let on_insert = doc! {
            "_id": fresh.id.oid(), "status": fresh.status.as_str(), "tags": Vec::<String>::new(),
            "priority": fresh.priority.as_str(), "lastMessage": Bson::Null, "lastMessageTime": Bson::Null,
            "lastSeq": 0_i64,
            "unreadCount": {"businessOwner": 0_i64, "customer": 0_i64},
            "readSeq": {"businessOwner": 0_i64, "customer": 0_i64},
            "createdAt": date(now), "updatedAt": date(now), "activityAt": date(now),
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
        if let Some(s) = patch.status {
            set.insert("status", s.as_str());
        }
        if let Some(p) = patch.priority {
            set.insert("priority", p.as_str());
        }
        if let Some(t) = &patch.tags {
            set.insert("tags", t.clone());
        }
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

    async fn append_message(&self, m: NewMessage) -> StoreResult<Appended> {
        let what = "appending a message";
        let conv = m.conversation_id.oid();
        if let Some(cmid) = &m.client_message_id
            && let Some(existing) = self.find_msg(doc! {"conversationId": conv, "clientMessageId": cmid}).await?
        {
            return Ok(Appended::Existing(existing));
        }
        let unread_key = format!("unreadCount.{}", side_key(m.sender_side.other()));
        let at = date(m.created_at);
        let counter = self
            .conversations
            .find_one_and_update(
                doc! {"_id": conv},
                doc! {
                    "$inc": {"lastSeq": 1_i64, &unread_key: 1_i64},
                    "$set": {
                        "lastMessage": &m.content, "lastMessageTime": at, "activityAt": at, "updatedAt": at,
                    },
                },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?
            .context("the conversation does not exist")?;
        let seq = Doc(&counter).int("lastSeq");
        let msg = Message {
            id: MessageId::new(),
            conversation_id: m.conversation_id,
            seq,
            sender_id: m.sender_id,
            sender_side: m.sender_side,
            sender_name: m.sender_name,
            content: m.content,
            attachments: m.attachments,
            client_message_id: m.client_message_id,
            status: MessageStatus::Sent,
            created_at: m.created_at.trunc_subsecs(3),
        };
        let sender_oid = ObjectId::parse_str(&msg.sender_id).context("sender id")?;
        let mut d = doc! {
            "_id": msg.id.oid(), "conversationId": conv, "seq": seq, "senderId": sender_oid,
            "senderRole": msg.sender_side.role_name(), "senderName": &msg.sender_name,
            "content": &msg.content,
            "attachments": bson::to_bson(&msg.attachments).context("encoding attachments")?,
            "status": msg.status.as_str(), "createdAt": at,
        };
        if let Some(cmid) = &msg.client_message_id {
            d.insert("clientMessageId", cmid);
        }
        if let Err(e) = self.messages.insert_one(d).await {
            if let (true, Some(cmid)) = (is_duplicate_key(&e), &msg.client_message_id) {
                // A concurrent retry stored it first: undo our unread bump and return theirs.
                // The `seq` we took stays unused; seq strictly increases, gaps are allowed.
                // `lastMessage` keeps what our update set: the retried content.
                self.conversations
                    .update_one(doc! {"_id": conv}, doc! {"$inc": {&unread_key: -1_i64}})
                    .await
                    .map_err(|e| classify(what, e))?;
                let existing = self
                    .find_msg(doc! {"conversationId": conv, "clientMessageId": cmid})
                    .await?
                    .context("duplicate clientMessageId but no stored message")?;
                return Ok(Appended::Existing(existing));
            }
            return Err(classify(what, e));
        }
        Ok(Appended::Created(msg))
    }

    async fn get_message(&self, id: MessageId) -> StoreResult<Option<Message>> {
        self.find_msg(doc! {"_id": id.oid()}).await
    }

    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<Message>> {
        let what = "listing messages";
        let mut range = Document::new();
        if let Some(a) = q.after {
            range.insert("$gt", a);
        }
        if let Some(b) = q.before {
            range.insert("$lt", b);
        }
        let mut filter = doc! {"conversationId": q.conversation_id.oid()};
        if !range.is_empty() {
            filter.insert("seq", range);
        }
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
        let other = reader.other().role_name();
        self.messages
            .update_many(
                doc! {"conversationId": conv, "senderRole": other, "seq": {"$lte": up_to}, "status": {"$ne": "read"}},
                doc! {"$set": {"status": "read"}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        let key = side_key(reader);
        let read_key = format!("readSeq.{key}");
        let d = self
            .conversations
            .find_one_and_update(doc! {"_id": conv}, doc! {"$max": {&read_key: up_to}})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?
            .context("the conversation does not exist")?;
        let read_seq = conv_from(&d).context(what)?.read_seq.get(reader);
        let unread = self
            .messages
            .count_documents(doc! {"conversationId": conv, "senderRole": other, "seq": {"$gt": read_seq}})
            .await
            .map_err(|e| classify(what, e))?;
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
}
