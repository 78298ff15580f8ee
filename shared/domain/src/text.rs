//! Validated text newtypes: parse, don't validate. Past the edge nobody re-checks.

use serde::Serialize;

/// Longest message body, in characters (Unicode scalar values), after cleaning.
pub const MAX_MESSAGE_CHARS: usize = 5000;

/// Why a message body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("message content is empty")]
    Empty,
    #[error("message content is {0} characters long; the limit is {MAX_MESSAGE_CHARS}")]
    TooLong(usize),
}

/// A message body: control characters other than `\n` and `\t` removed,
/// trimmed, 1..=5000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(raw: &str) -> Result<Self, BodyError> {
        let cleaned: String = raw.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect();
        let trimmed = cleaned.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(BodyError::Empty);
        }
        if chars > MAX_MESSAGE_CHARS {
            return Err(BodyError::TooLong(chars));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The first `n` characters, with an ellipsis when cut (for notifications).
    pub fn preview(&self, n: usize) -> String {
        preview(&self.0, n)
    }
}

/// The first `n` characters of `s`, with an ellipsis when cut.
pub fn preview(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A client-chosen idempotency key for a send: 1..=64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("clientMessageId must be 1 to 64 printable ASCII characters".into())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A search term for `q`: trimmed, at most 100 characters, empty means none.
pub fn search_term(raw: Option<&str>) -> Option<String> {
    let t = raw?.trim();
    if t.is_empty() { None } else { Some(t.chars().take(100).collect()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_cleaned_and_trimmed() {
        let b = MessageBody::parse("  hi\u{0}\u{7} there\n\tok \r ").expect("valid");
        assert_eq!(b.as_str(), "hi there\n\tok");
    }

    #[test]
    fn empty_and_whitespace_bodies_are_refused() {
        assert_eq!(MessageBody::parse(""), Err(BodyError::Empty));
        assert_eq!(MessageBody::parse(" \n\t "), Err(BodyError::Empty));
        assert_eq!(MessageBody::parse("\u{1}\u{2}"), Err(BodyError::Empty));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let max = "😀".repeat(MAX_MESSAGE_CHARS);
        assert!(max.len() > MAX_MESSAGE_CHARS * 3);
        assert!(MessageBody::parse(&max).is_ok());
        let over = "😀".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(MessageBody::parse(&over), Err(BodyError::TooLong(5001)));
    }

    #[test]
    fn preview_cuts_on_char_boundaries() {
        assert_eq!(preview("héllo wörld", 5), "héllo…");
        assert_eq!(preview("short", 10), "short");
    }

    #[test]
    fn client_message_id_rules() {
        assert!(ClientMessageId::parse("abc-123").is_ok());
        assert!(ClientMessageId::parse("").is_err());
        assert!(ClientMessageId::parse("has space").is_err());
        assert!(ClientMessageId::parse(&"x".repeat(65)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a client sends: refused, or a clean, trimmed body of 1–5000
        /// characters with no control characters but newline and tab — and
        /// cleaning twice changes nothing.
        #[test]
        fn bodies_are_clean_or_refused(raw in proptest::collection::vec(any::<char>(), 0..6000)) {
            let raw: String = raw.into_iter().collect();
            match MessageBody::parse(&raw) {
                Ok(b) => {
                    let s = b.as_str();
                    prop_assert!(!s.is_empty() && s.chars().count() <= MAX_MESSAGE_CHARS);
                    prop_assert_eq!(s, s.trim());
                    prop_assert!(s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
                    prop_assert_eq!(MessageBody::parse(s), Ok(b.clone()));
                }
                Err(BodyError::Empty) => prop_assert!(raw.chars().all(|c| c.is_whitespace() || c.is_control())),
                Err(BodyError::TooLong(n)) => prop_assert!(n > MAX_MESSAGE_CHARS),
            }
        }

        /// clientMessageId: accepted exactly when 1–64 printable ASCII characters.
        #[test]
        fn client_message_ids(raw in ".{0,80}") {
            let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_graphic());
            prop_assert_eq!(ClientMessageId::parse(&raw).is_ok(), ok);
        }
    }
}
