//! Documents to and from the domain's types, as the Node service's Mongoose
//! models write them, and the webhook outbox entries kept in documents.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use mongodb::Collection;
use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use omnibiz_domain::webhook::{Attempt, Delivery, DeliveryStatus, Endpoint, HookEvent, Target, UnreadCheck};
use omnibiz_domain::{
    Attachment, Conversation, ConversationId, ConversationStatus, Customer, Message, MessageId, MessageStatus, PerSide,
    Priority, QuickReply, Shortcut, Side, Upload,
};

use super::errors::classify;
use crate::StoreResult;

pub(super) fn side_key(side: Side) -> &'static str {
    match side {
        Side::Owner => "businessOwner",
        Side::Customer => "customer",
    }
}

pub(super) fn date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_chrono(t)
}

/// An entry of a conversation's `hooks` map (the webhook outbox).
pub(super) fn hook_entry(kind: HookEvent, at: DateTime<Utc>, data: Document) -> Document {
    doc! {"kind": kind.as_str(), "at": date(at), "data": data}
}

/// Documents of `coll` with webhook events waiting in their `hooks` map
/// (with the field naming their conversation).
pub(super) async fn pending_hooks(
    coll: &Collection<Document>,
    conv_field: &str,
    limit: i64,
) -> StoreResult<Vec<Document>> {
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
pub(super) fn change_set(
    mut set: Document,
    kind: HookEvent,
    id: MessageId,
    conversation: ConversationId,
    content: Option<&str>,
    at: DateTime<Utc>,
) -> Document {
    let data = omnibiz_domain::events::change_data(kind, id, conversation, content, at);
    let data = bson::to_document(&data).unwrap_or_default();
    set.insert(format!("hooks.{}", omnibiz_domain::events::change_event_id(kind, id, at)), hook_entry(kind, at, data));
    set.insert("hookPending", true);
    set
}

pub(super) fn endpoint_doc(e: &Endpoint) -> Document {
    let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
    doc! {
        "_id": e.id.oid(), "owner": e.owner.oid(), "url": &e.url, "secret": &e.secret, "events": events,
        "description": &e.description, "enabled": e.enabled, "disabledReason": e.disabled_reason.clone(),
        "failureStreak": e.failure_streak, "createdAt": date(e.created_at), "updatedAt": date(e.updated_at),
    }
}

pub(super) fn endpoint_from(d: &Document) -> anyhow::Result<Endpoint> {
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

pub(super) fn delivery_doc(d: &Delivery) -> anyhow::Result<Document> {
    Ok(doc! {
        "_id": &d.id, "endpointId": d.target.oid(), "channel": d.target.channel(), "owner": d.owner.oid(), "eventId": &d.event_id,
        "kind": d.kind.as_str(), "conversationId": d.conversation.oid(), "body": &d.body,
        "status": d.status.as_str(), "attempts": d.attempts, "nextAt": date(d.next_at),
        "createdAt": date(d.created_at), "updatedAt": date(d.updated_at),
        "log": bson::to_bson(&d.log).context("encoding the attempt log")?,
        "unreadCheck": match d.unread_check { Some(u) => bson::to_bson(&u).context("encoding the unread check")?, None => Bson::Null },
    })
}

pub(super) fn delivery_from(d: &Document) -> anyhow::Result<Delivery> {
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
        target: Target::from_parts(x.opt_str("channel").as_deref(), x.oid("endpointId")?).context("field `channel`")?,
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
pub(super) struct Doc<'a>(pub(super) &'a Document);

impl Doc<'_> {
    pub(super) fn oid(&self, k: &str) -> anyhow::Result<ObjectId> {
        self.0.get_object_id(k).with_context(|| format!("field `{k}`"))
    }
    pub(super) fn str(&self, k: &str) -> anyhow::Result<String> {
        Ok(self.0.get_str(k).with_context(|| format!("field `{k}`"))?.to_owned())
    }
    pub(super) fn opt_str(&self, k: &str) -> Option<String> {
        self.0.get_str(k).ok().map(str::to_owned)
    }
    pub(super) fn int(&self, k: &str) -> i64 {
        match self.0.get(k) {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            Some(Bson::Double(v)) => *v as i64,
            _ => 0,
        }
    }
    pub(super) fn float(&self, k: &str) -> f64 {
        match self.0.get(k) {
            Some(Bson::Double(v)) => *v,
            Some(Bson::Int64(v)) => *v as f64,
            Some(Bson::Int32(v)) => f64::from(*v),
            _ => 0.0,
        }
    }
    pub(super) fn date(&self, k: &str) -> Option<DateTime<Utc>> {
        self.0.get_datetime(k).ok().map(|d| d.to_chrono())
    }
    pub(super) fn per_side(&self, k: &str) -> PerSide {
        match self.0.get_document(k) {
            Ok(d) => {
                let d = Doc(d);
                PerSide { owner: d.int("businessOwner"), customer: d.int("customer") }
            }
            Err(_) => PerSide::default(),
        }
    }
}

pub(super) fn conv_from(d: &Document) -> anyhow::Result<Conversation> {
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
        // Set together with `lastSeq` (see `append_message`); internal notes
        // after it counted in `notesAfterLast`.
        last_message_seq: if last_message.is_some() { x.int("lastSeq") - x.int("notesAfterLast") } else { 0 },
        last_message,
        last_message_time,
        last_seq: x.int("lastSeq"),
        unread: x.per_side("unreadCount"),
        read_seq: x.per_side("readSeq"),
        created_at: created,
        updated_at: x.date("updatedAt").unwrap_or(created),
        archived: omnibiz_domain::Archived {
            owner: d.get_document("archived").ok().and_then(|a| a.get_bool("businessOwner").ok()).unwrap_or(false),
            customer: d.get_document("archived").ok().and_then(|a| a.get_bool("customer").ok()).unwrap_or(false),
        },
        assignee: d.get_object_id("assignee").ok().map(Into::into),
        group: (d.get_str("type").ok() == Some("group")).then(|| omnibiz_domain::Group {
            title: x.opt_str("title").unwrap_or_default(),
            members: d
                .get_array("members")
                .map(|a| a.iter().filter_map(|m| m.as_object_id().map(Into::into)).collect())
                .unwrap_or_default(),
        }),
    })
}

/// The filter for "archived for `side`" (or not): for the business, its own
/// flag or the seed's `status: archived`.
pub(super) fn archived_filter(side: Side, archived: bool) -> Document {
    match (side, archived) {
        (Side::Owner, true) => doc! {"$or": [{"archived.businessOwner": true}, {"status": "archived"}]},
        (Side::Owner, false) => doc! {"archived.businessOwner": {"$ne": true}, "status": {"$ne": "archived"}},
        (Side::Customer, true) => doc! {"archived.customer": true},
        (Side::Customer, false) => doc! {"archived.customer": {"$ne": true}},
    }
}

pub(super) fn msg_from(d: &Document) -> anyhow::Result<Message> {
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
        reactions: if deleted { Vec::new() } else { reactions_from(d) },
        reply_to: d.get_object_id("replyTo").ok().map(Into::into),
        link_preview: d.get_document("linkPreview").ok().and_then(|p| bson::from_document(p.clone()).ok()),
        private: d.get_bool("isPrivate").unwrap_or(false),
        system: d.get_bool("isSystem").unwrap_or(false),
        team_role: x.opt_str("senderTeamRole").and_then(|r| omnibiz_domain::TeamRole::parse(&r)),
        deleted,
    })
}

/// A message document's `reactions`: `[{emoji, userId, userRole, createdAt}]`
/// (entries that do not parse are skipped: the Node service never writes them).
fn reactions_from(d: &Document) -> Vec<omnibiz_domain::Reaction> {
    let Ok(list) = d.get_array("reactions") else { return Vec::new() };
    list.iter()
        .filter_map(|b| {
            let r = b.as_document()?;
            let side = Side::from_role_name(r.get_str("userRole").ok()?)?;
            Some(omnibiz_domain::Reaction {
                emoji: r.get_str("emoji").ok()?.to_owned(),
                by: omnibiz_domain::Party::of(side, r.get_object_id("userId").ok()?),
                at: r.get_datetime("createdAt").ok()?.to_chrono(),
            })
        })
        .collect()
}

pub(super) fn reply_from(d: &Document) -> anyhow::Result<QuickReply> {
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

pub(super) fn upload_doc(u: &Upload) -> Document {
    doc! {
        "_id": u.id.oid(), "conversationId": u.conversation_id.oid(), "uploaderId": &u.uploader_id,
        "uploaderRole": u.uploader_side.role_name(), "name": &u.name, "type": &u.mime_type,
        "size": u.size.map(|n| i64::try_from(n).unwrap_or(i64::MAX)), "hasThumbnail": u.has_thumbnail,
        "createdAt": date(u.created_at), "claim": u.claim.clone(), "messageId": u.message_id.map(|m| m.oid()),
        "confirmed": u.confirmed, "audio": audio_bson(u.audio.as_ref()),
    }
}

/// An upload's audio measurements as stored (`{durationMs, waveform}`), or null.
pub(super) fn audio_bson(a: Option<&omnibiz_domain::AudioInfo>) -> Bson {
    a.and_then(|a| bson::to_bson(a).ok()).unwrap_or(Bson::Null)
}

pub(super) fn upload_from(d: &Document) -> anyhow::Result<Upload> {
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
        audio: match d.get("audio") {
            Some(b @ Bson::Document(_)) => Some(bson::from_bson(b.clone()).context("field `audio`")?),
            _ => None,
        },
    })
}

/// Which side sent a message: the seed's `senderModel` ("User"/"Customer")
/// when present, else `senderRole` (our first release wrote only that).
pub(super) fn sender_side(d: &Document) -> Side {
    let x = Doc(d);
    x.opt_str("senderModel")
        .and_then(|s| Side::from_model_name(&s))
        .or_else(|| x.opt_str("senderRole").and_then(|s| Side::from_role_name(&s)))
        .unwrap_or(Side::Customer)
}

/// Whether a message document was sent from `side`: the seed's `senderModel`
/// (`User`/`Customer`) when present, else `senderRole` (our first release wrote only that).
pub(super) fn is_from(d: &Document, side: Side) -> bool {
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

pub(super) fn cust_from(d: &Document) -> anyhow::Result<Customer> {
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

pub(super) fn cust_doc(c: &Customer) -> Document {
    doc! {
        "_id": c.id.oid(), "name": &c.name, "email": &c.email, "phone": c.phone.clone(),
        "invitedBy": c.invited_by.oid(), "totalOrders": c.total_orders, "totalSpent": c.total_spent,
        "lastOrderDate": c.last_order_date.map(date), "lastLogin": c.last_login.map(date),
        "createdAt": date(c.created_at), "updatedAt": date(c.created_at),
    }
}

pub(super) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

pub(super) async fn collect(what: &'static str, cursor: mongodb::Cursor<Document>) -> StoreResult<Vec<Document>> {
    cursor.try_collect().await.map_err(|e| classify(what, e))
}

/// A party's conversations: the business's, or a customer's direct one and their groups.
pub(super) fn party_filter(party: omnibiz_domain::Party) -> Document {
    use omnibiz_domain::Party;
    match party {
        Party::Owner(id) => doc! {"businessOwnerId": id.oid()},
        Party::Customer(id) => doc! {"$or": [{"customerId": id.oid()}, {"members": id.oid()}]},
    }
}
