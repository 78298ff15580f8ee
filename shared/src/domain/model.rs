//! Stored entities, independent of the store that holds them.

use bson::oid::ObjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ConversationId, CustomerId, MessageId, QuickReplyId, UserId};

/// The role of a `users` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    BusinessOwner,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BusinessOwner => "business_owner",
            Self::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("admin") { Self::Admin } else { Self::BusinessOwner }
    }
}

/// A business owner (or admin). Owned by the main OmniBiz app; `seed` writes demo ones.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: UserRole,
    pub business_name: Option<String>,
}

/// A customer, invited by exactly one business owner, with order statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub invited_by: UserId,
    pub total_orders: i64,
    pub total_spent: f64,
    pub last_order_date: Option<DateTime<Utc>>,
    /// When the customer last signed in to the storefront (the main app writes it).
    pub last_login: Option<DateTime<Utc>>,
    /// When the customer joined (`joinedDate` in the seed's JSON).
    pub created_at: DateTime<Utc>,
}

/// One participant of a conversation: an owner or a customer, by id. Names
/// the principal's personal room and bus topic (`user:<id>` /
/// `customer:<id>`) in 13 bytes, without a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Owner(UserId),
    Customer(CustomerId),
}

impl Party {
    /// The participant on `side` with this id.
    pub fn of(side: Side, id: ObjectId) -> Self {
        match side {
            Side::Owner => Self::Owner(UserId(id)),
            Side::Customer => Self::Customer(CustomerId(id)),
        }
    }

    pub fn oid(self) -> ObjectId {
        match self {
            Self::Owner(id) => id.oid(),
            Self::Customer(id) => id.oid(),
        }
    }

    pub fn side(self) -> Side {
        match self {
            Self::Owner(_) => Side::Owner,
            Self::Customer(_) => Side::Customer,
        }
    }

    /// The personal room's name, `user:<id>` or `customer:<id>`.
    pub fn room(self) -> String {
        match self {
            Self::Owner(id) => format!("user:{id}"),
            Self::Customer(id) => format!("customer:{id}"),
        }
    }

    /// Parses a personal room's name (the inverse of [`Party::room`]).
    pub fn from_room(room: &str) -> Option<Self> {
        if let Some(id) = room.strip_prefix("user:") {
            return id.parse().ok().map(Self::Owner);
        }
        room.strip_prefix("customer:")?.parse().ok().map(Self::Customer)
    }
}

/// Which side of a conversation someone is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The business owner.
    Owner,
    Customer,
}

impl Side {
    pub fn other(self) -> Self {
        match self {
            Self::Owner => Self::Customer,
            Self::Customer => Self::Owner,
        }
    }
    /// The `senderRole` value of messages sent from this side.
    pub fn role_name(self) -> &'static str {
        match self {
            Self::Owner => "business_owner",
            Self::Customer => "customer",
        }
    }
    /// The seed's `senderModel` (the Mongoose model the sender id refers to).
    pub fn model_name(self) -> &'static str {
        match self {
            Self::Owner => "User",
            Self::Customer => "Customer",
        }
    }
    pub fn from_model_name(s: &str) -> Option<Self> {
        match s {
            "User" => Some(Self::Owner),
            "Customer" => Some(Self::Customer),
            _ => None,
        }
    }
    /// `admin` is a `users` account, so on the business side.
    pub fn from_role_name(s: &str) -> Option<Self> {
        match s {
            "business_owner" | "admin" => Some(Self::Owner),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Active,
    Archived,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
str_enum!(ConversationStatus { Active => "active", Archived => "archived", Blocked => "blocked" });
str_enum!(Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" });
str_enum!(MessageStatus { Sent => "sent", Delivered => "delivered", Read => "read", Failed => "failed" });

/// A pair of per-side counters (unread messages, read positions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerSide {
    pub owner: i64,
    pub customer: i64,
}

impl PerSide {
    pub fn get(&self, side: Side) -> i64 {
        match side {
            Side::Owner => self.owner,
            Side::Customer => self.customer,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub business_owner_id: UserId,
    pub customer_id: CustomerId,
    pub status: ConversationStatus,
    pub tags: Vec<String>,
    pub priority: Priority,
    pub last_message: Option<String>,
    pub last_message_time: Option<DateTime<Utc>>,
    /// `seq` of the message in `last_message` (0 when none).
    pub last_message_seq: i64,
    /// Highest `seq` handed out in this conversation.
    pub last_seq: i64,
    pub unread: PerSide,
    /// Highest `seq` each side has read.
    pub read_seq: PerSide,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Conversation {
    /// A fresh, empty conversation between an owner and one of their customers.
    pub fn new(owner: UserId, customer: CustomerId, now: DateTime<Utc>) -> Self {
        Self {
            id: ConversationId::new(),
            business_owner_id: owner,
            customer_id: customer,
            status: ConversationStatus::Active,
            tags: Vec::new(),
            priority: Priority::Normal,
            last_message: None,
            last_message_time: None,
            last_message_seq: 0,
            last_seq: 0,
            unread: PerSide::default(),
            read_seq: PerSide::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The activity time lists are ordered by: the last message, else creation.
    pub fn activity_time(&self) -> DateTime<Utc> {
        self.last_message_time.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Sent,
    Delivered,
    Read,
    /// Only the Node service writes it (a send it could not complete); served as stored.
    Failed,
}

/// Metadata of a file attached to a message: the seed's `{url, type, name,
/// size}`. A file uploaded here also has its upload `id`, and a
/// `thumbnailUrl` when it is an image; its `url` is our download endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The upload's id, for files uploaded here (`POST …/attachments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-fA-F]{24}$")]
    pub id: Option<String>,
    /// An http(s) URL without whitespace, at most 2048 characters; for an
    /// upload, its download endpoint (relative unless `OMNIBIZ_PUBLIC_URL` is set).
    #[schema(pattern = "^(https?://|/)[^\\s]+$", max_length = 2048)]
    pub url: String,
    /// 1–255 characters, not only spaces.
    #[schema(pattern = "\\S", max_length = 255)]
    pub name: String,
    /// A media type, 1–127 characters.
    #[serde(rename = "type")]
    #[schema(pattern = "\\S", max_length = 127)]
    pub mime_type: String,
    /// Bytes (an integer; `2048.0` is read as 2048, as JSON allows).
    #[serde(deserialize_with = "integral_size")]
    pub size: u64,
    /// A small JPEG preview of an uploaded image (same access rules as `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
}

/// An attachment in a send: either a file uploaded here, by its upload id
/// (the server fills in the rest), or a link to a file elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AttachmentInput {
    /// `{id}` of an upload to this conversation by the sender (other fields are ignored).
    Upload {
        #[schema(pattern = "^[0-9a-fA-F]{24}$")]
        id: String,
    },
    /// `{url, type, name, size}` of a file stored elsewhere.
    Link(AttachmentLink),
}

/// A file stored elsewhere, as a send names it: the seed's `{url, type, name, size}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentLink {
    /// An http(s) URL without whitespace, at most 2048 characters.
    #[schema(pattern = "^https?://[^\\s]+$", max_length = 2048)]
    pub url: String,
    /// 1–255 characters, not only spaces.
    #[schema(pattern = "\\S", max_length = 255)]
    pub name: String,
    /// A media type, 1–127 characters.
    #[serde(rename = "type")]
    #[schema(pattern = "\\S", max_length = 127)]
    pub mime_type: String,
    /// Bytes (an integer; `2048.0` is read as 2048, as JSON allows).
    #[serde(deserialize_with = "integral_size")]
    pub size: u64,
}

impl AttachmentLink {
    /// The attachment a message stores for it (checked by [`Attachment::validate`]).
    pub fn into_attachment(self) -> Attachment {
        Attachment {
            id: None,
            url: self.url,
            name: self.name,
            mime_type: self.mime_type,
            size: self.size,
            thumbnail_url: None,
        }
    }
}

impl<'de> Deserialize<'de> for AttachmentInput {
    /// An object with an `id` is an upload; anything else must be a whole
    /// link (so its errors name the missing or malformed field).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        match v.get("id") {
            Some(serde_json::Value::String(id)) => Ok(Self::Upload { id: id.clone() }),
            None | Some(serde_json::Value::Null) => serde_json::from_value(v).map(Self::Link).map_err(D::Error::custom),
            Some(_) => Err(D::Error::custom("attachment id must be a string")),
        }
    }
}

/// A size that JSON may spell as an integral float (`2048.0`).
fn integral_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9.007_199_254_740_992e15 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!("size must be a whole number of bytes, got {n}"))),
    }
}

/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

impl Attachment {
    /// Checks one attachment's metadata; the error names the problem.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() > 2048
            || url.contains(char::is_whitespace)
        {
            return Err("attachment url must be an http(s) URL of at most 2048 characters".into());
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 255 {
            return Err("attachment name must be 1 to 255 characters".into());
        }
        if self.mime_type.trim().is_empty() || self.mime_type.len() > 127 {
            return Err("attachment type must be 1 to 127 characters".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    /// Hex id of the sender (a user or a customer, see `sender_side`).
    pub sender_id: String,
    pub sender_side: Side,
    pub sender_name: String,
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub client_message_id: Option<String>,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    /// When the sender last edited it.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted by its sender: content and attachments are gone (the seed's `isDeleted`).
    pub deleted: bool,
}

/// A business owner's saved reply, sent by its shortcut.
#[derive(Debug, Clone, PartialEq)]
pub struct QuickReply {
    pub id: QuickReplyId,
    pub owner: UserId,
    pub shortcut: Shortcut,
    /// A valid message body.
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A quick reply's shortcut: 1–32 of `a-z`, `0-9`, `-` and `_` (typed as
/// `/shortcut` in a composer; the slash is not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Shortcut(String);

impl Shortcut {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().trim_start_matches('/').to_ascii_lowercase();
        let ok = (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(s)) } else { Err("shortcut must be 1 to 32 of a-z, 0-9, '-' and '_'".into()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(url: &str) -> Attachment {
        Attachment {
            id: None,
            url: url.into(),
            name: "a.png".into(),
            mime_type: "image/png".into(),
            size: 10,
            thumbnail_url: None,
        }
    }

    #[test]
    fn shortcuts_are_short_lowercase_words() {
        assert_eq!(Shortcut::parse("/Thanks").expect("ok").as_str(), "thanks");
        assert!(Shortcut::parse("out-of_stock2").is_ok());
        assert!(Shortcut::parse("").is_err());
        assert!(Shortcut::parse("two words").is_err());
        assert!(Shortcut::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn attachment_urls_must_be_http() {
        assert!(att("https://cdn.example.com/a.png").validate().is_ok());
        assert!(att("javascript:alert(1)").validate().is_err());
        assert!(att("ftp://x/y").validate().is_err());
    }
}
