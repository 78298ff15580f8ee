//! The domain: identifiers, entities and validated input types.

mod ids;

pub use bson::oid::ObjectId;
mod model;
pub mod search;
mod text;

pub use ids::{ConversationId, CustomerId, EndpointId, InvalidId, MessageId, QuickReplyId, UploadId, UserId};
pub use model::{
    Attachment, AttachmentInput, AttachmentLink, Conversation, ConversationStatus, Customer, MAX_ATTACHMENTS, Message,
    MessageStatus, Party, PerSide, Priority, QuickReply, Shortcut, Side, User, UserRole,
};
pub use text::{BodyError, ClientMessageId, MAX_MESSAGE_CHARS, MessageBody, preview, search_term};
