//! Identifiers: MongoDB ObjectIds wrapped in one newtype per entity, so a
//! customer id can never be passed where a conversation id is expected.

use std::fmt;
use std::str::FromStr;

use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

/// The input was not a 24-hex-digit ObjectId.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid id (expected 24 hexadecimal characters)")]
pub struct InvalidId {
    pub input: String,
}

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub ObjectId);

        impl $name {
            pub fn new() -> Self {
                Self(ObjectId::new())
            }
            pub fn oid(&self) -> ObjectId {
                self.0
            }
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                ObjectId::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| InvalidId { input: s.chars().take(64).collect() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<ObjectId> for $name {
            fn from(oid: ObjectId) -> Self {
                Self(oid)
            }
        }
    };
}

object_id!(
    /// A business owner or admin (`users` collection).
    UserId
);
object_id!(
    /// A customer (`customers` collection), invited by one business owner.
    CustomerId
);
object_id!(
    /// A conversation between one business owner and one customer.
    ConversationId
);
object_id!(
    /// A stored message.
    MessageId
);
object_id!(
    /// An uploaded file (see `omnibiz_service::files`).
    UploadId
);
object_id!(
    /// A business owner's saved reply (the seed's "chat templates").
    QuickReplyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_rejects_garbage() {
        let id: ConversationId = "65a1b2c3d4e5f60718293a4b".parse().expect("valid id");
        assert_eq!(id.to_hex(), "65a1b2c3d4e5f60718293a4b");
        assert!("not-an-id".parse::<ConversationId>().is_err());
        assert!("65a1b2c3d4e5f60718293a4".parse::<ConversationId>().is_err());
        assert!("65a1b2c3d4e5f60718293a4z".parse::<ConversationId>().is_err());
    }
}
object_id!(
    /// A business owner's webhook endpoint.
    EndpointId
);
object_id!(
    /// A browser's Web Push subscription (see `omnibiz_service::notify`).
    SubscriptionId
);
