//! A business owner's saved replies (the seed's "chat templates").

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{QuickReplyId, UserId};

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

    #[test]
    fn shortcuts_are_short_lowercase_words() {
        assert_eq!(Shortcut::parse("/Thanks").expect("ok").as_str(), "thanks");
        assert!(Shortcut::parse("out-of_stock2").is_ok());
        assert!(Shortcut::parse("").is_err());
        assert!(Shortcut::parse("two words").is_err());
        assert!(Shortcut::parse(&"x".repeat(33)).is_err());
    }
}
