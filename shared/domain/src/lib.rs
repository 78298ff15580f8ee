//! The domain: identifiers, entities, validated input, the JSON shapes
//! clients see and the webhook events — no I/O, nothing async.
//!
//! One file per entity ([`account`], [`conversation`], [`message`],
//! [`notification`], [`quick_reply`], [`team`], [`upload`], [`webhook`]); [`events`] decides every
//! webhook event's id and body; [`views`] the JSON every client reads.
//! Every other crate of the workspace builds on this one.

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

pub mod account;
pub mod conversation;
pub mod events;
pub mod ids;
pub mod message;
pub mod notification;
pub mod party;
pub mod quick_reply;
pub mod search;
pub mod team;
pub mod text;
pub mod upload;
pub mod views;
pub mod webhook;

pub use account::{Customer, User, UserRole};
pub use bson::oid::ObjectId;
pub use conversation::{
    Archived, Conversation, ConversationPatch, ConversationStatus, Group, MAX_GROUP_MEMBERS, Priority, group_title,
};
pub use ids::{
    ConversationId, CustomerId, EndpointId, InvalidId, MessageId, QuickReplyId, SubscriptionId, UploadId, UserId,
};
pub use message::{
    Attachment, AttachmentInput, AttachmentLink, AudioInfo, LinkPreview, MAX_ATTACHMENTS, MAX_DISTINCT_REACTIONS,
    Message, MessageStatus, Reaction, parse_emoji,
};
pub use party::{Party, PerSide, Side};
pub use quick_reply::{QuickReply, Shortcut};
pub use team::{MAX_TEAM_MEMBERS, Seat, TeamMember, TeamRole, TeamSettings};
pub use text::{BodyError, ClientMessageId, MAX_MESSAGE_CHARS, MessageBody, preview, search_term};
pub use upload::Upload;
