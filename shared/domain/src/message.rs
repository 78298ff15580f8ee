//! Messages and their attachments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId};
use crate::party::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Sent,
    Delivered,
    Read,
    /// Only the Node service writes it (a send it could not complete); served as stored.
    Failed,
}

str_enum!(MessageStatus { Sent => "sent", Delivered => "delivered", Read => "read", Failed => "failed" });

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
    /// For an uploaded audio file (a voice message): its length and a
    /// waveform to draw, computed by the server from the decoded audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioInfo>,
}

/// What the server measured of an uploaded audio file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudioInfo {
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Peak levels over equal slices of the recording, 0–100 (the loudest
    /// slice is 100), for drawing; at most [`AudioInfo::WAVEFORM_POINTS`].
    #[schema(max_items = 64)]
    pub waveform: Vec<u8>,
}

impl AudioInfo {
    /// Points in a waveform.
    pub const WAVEFORM_POINTS: usize = 64;
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
            audio: None,
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
pub(crate) fn integral_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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
    /// Emoji reactions, oldest first: at most one of each emoji per person.
    pub reactions: Vec<Reaction>,
    /// The earlier message of the same conversation this one replies to.
    pub reply_to: Option<crate::MessageId>,
    /// What its first link points to, fetched after it was stored.
    pub link_preview: Option<LinkPreview>,
    /// An internal note: the business side's only (never shown to the
    /// customer, not their unread, not the conversation's preview).
    pub private: bool,
    /// Sent by a team member of the business (not the owner): their role.
    pub team_role: Option<crate::TeamRole>,
    /// A record of the conversation itself (a group's members changing),
    /// written by the business side: no one's unread, not the preview.
    pub system: bool,
}

/// A message's first link as a card: read from the page's OpenGraph tags
/// (else its `<title>` and description) by the server, never by readers'
/// browsers; its image is stored with the message's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkPreview {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    /// The page's image, stored here: get a signed link with `GET /api/messages/attachments/{imageId}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// One person's emoji reaction to a message. A reaction is not a message:
/// it moves neither the conversation's preview nor its unread counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub by: crate::Party,
    pub at: DateTime<Utc>,
}

/// Most distinct emoji one message may carry.
pub const MAX_DISTINCT_REACTIONS: usize = 20;

/// An emoji as the Unicode emoji list knows it (with or without a skin
/// tone, flags and ZWJ sequences included), normalised to its fully
/// qualified form; anything else — text, several emoji, a bare modifier —
/// is refused.
pub fn parse_emoji(raw: &str) -> Result<String, String> {
    let e = emojis::get(raw.trim()).ok_or_else(|| "emoji: must be a single emoji (e.g. 👍)".to_owned())?;
    Ok(e.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_emoji_are_reactions() {
        for ok in ["👍", "👍🏽", "❤️", "🇫🇷", "👨‍👩‍👧", "🎉"] {
            assert!(parse_emoji(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "a", "ok", "👍👍", "🏽", "<script>", "👍 ", "\u{200d}"] {
            if bad == "👍 " {
                assert!(parse_emoji(bad).is_ok(), "surrounding space is trimmed");
                continue;
            }
            assert!(parse_emoji(bad).is_err(), "{bad:?}");
        }
    }

    fn att(url: &str) -> Attachment {
        Attachment {
            id: None,
            url: url.into(),
            name: "a.png".into(),
            mime_type: "image/png".into(),
            size: 10,
            thumbnail_url: None,
            audio: None,
        }
    }

    #[test]
    fn attachment_urls_must_be_http() {
        assert!(att("https://cdn.example.com/a.png").validate().is_ok());
        assert!(att("javascript:alert(1)").validate().is_err());
        assert!(att("ftp://x/y").validate().is_err());
    }
}
