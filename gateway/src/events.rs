//! Incoming event payloads. The seed sometimes passes a bare id string and
//! sometimes an object; both are accepted. Anything malformed is an error
//! for that event only — never a panic or a dropped connection.

use omnibiz_domain::{AttachmentInput, ConversationId, MessageId};
use omnibiz_service::messaging::ServiceError;
use serde::Deserialize;
use serde_json::Value;

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(msg.into())
}

fn conversation_id(v: &Value) -> Result<ConversationId, ServiceError> {
    let raw = v.as_str().ok_or_else(|| invalid("conversationId must be a string"))?;
    raw.parse().map_err(|e| invalid(format!("conversationId: {e}")))
}

/// `id` or `{conversationId, lastSeq?}`.
pub fn join(v: &Value) -> Result<(ConversationId, Option<i64>), ServiceError> {
    match v {
        Value::String(_) => Ok((conversation_id(v)?, None)),
        Value::Object(o) => {
            let id = conversation_id(o.get("conversationId").unwrap_or(&Value::Null))?;
            let last = match o.get("lastSeq") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => {
                    Some(n.as_i64().filter(|s| *s >= 0).ok_or_else(|| invalid("lastSeq must be a whole number ≥ 0"))?)
                }
                Some(_) => return Err(invalid("lastSeq must be a number")),
            };
            Ok((id, last))
        }
        _ => Err(invalid("expected a conversation id or {conversationId}")),
    }
}

/// `id` or `{conversationId}` (leave, typing).
pub fn conversation(v: &Value) -> Result<ConversationId, ServiceError> {
    match v {
        Value::Object(o) => conversation_id(o.get("conversationId").unwrap_or(&Value::Null)),
        _ => conversation_id(v),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendPayload {
    pub conversation_id: String,
    /// The seed's field is `message`; `content` is accepted too. May be
    /// left out when `quickReply` names the content.
    #[serde(alias = "message", default)]
    pub content: String,
    /// A business owner's quick reply (its id or shortcut) to send as the content.
    pub quick_reply: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
    pub client_message_id: Option<String>,
    /// The id of an earlier message of this conversation to reply to.
    pub reply_to: Option<String>,
    /// An internal note for the business's team (never sent to the customer).
    #[serde(default)]
    pub is_private: bool,
}

/// `{conversationId, assignee}`: whom to assign to (`null` unassigns).
pub fn assign(v: &Value) -> Result<(ConversationId, Option<omnibiz_domain::UserId>), ServiceError> {
    let o = v.as_object().ok_or_else(|| invalid("expected {conversationId, assignee}"))?;
    let conv = conversation_id(o.get("conversationId").unwrap_or(&Value::Null))?;
    let assignee = match o.get("assignee") {
        None => return Err(invalid("assignee is required (a user id, or null to unassign)")),
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse().map_err(|e| invalid(format!("assignee: {e}")))?),
        Some(_) => return Err(invalid("assignee must be a user id or null")),
    };
    Ok((conv, assignee))
}

pub fn send(v: Value) -> Result<SendPayload, ServiceError> {
    serde_json::from_value(v).map_err(|e| invalid(format!("send_message: {e}")))
}

/// The `clientMessageId` of a payload, if it has a usable one (for error replies).
pub fn client_message_id(v: &Value) -> Option<String> {
    v.get("clientMessageId").and_then(Value::as_str).map(|s| s.chars().take(64).collect())
}

/// What `mark_read` names: a message, or a seq.
pub enum ReadTarget {
    Message(MessageId),
    Seq(ConversationId, Option<i64>),
}

pub fn mark_read(v: &Value) -> Result<ReadTarget, ServiceError> {
    if let Some(m) = v.get("messageId").filter(|m| !m.is_null()) {
        let raw = m.as_str().ok_or_else(|| invalid("messageId must be a string"))?;
        return raw.parse().map(ReadTarget::Message).map_err(|e| invalid(format!("messageId: {e}")));
    }
    let conv = conversation(v)?;
    let seq = match v.get("seq") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_i64().filter(|s| *s >= 0).ok_or_else(|| invalid("seq must be a whole number ≥ 0"))?),
    };
    Ok(ReadTarget::Seq(conv, seq))
}

/// `{messageId, content}` (edit) or `messageId` / `{messageId}` (delete).
pub fn message_edit(v: &Value) -> Result<(MessageId, Option<String>), ServiceError> {
    let raw = match v {
        Value::String(s) => s.as_str(),
        _ => v.get("messageId").and_then(Value::as_str).ok_or_else(|| invalid("messageId is required"))?,
    };
    let id = raw.parse().map_err(|e| invalid(format!("messageId: {e}")))?;
    let content = match v.get("content").or_else(|| v.get("message")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("content must be a string")),
    };
    Ok((id, content))
}

/// `add_reaction` / `remove_reaction`: `{messageId, emoji}`.
pub fn reaction(v: &Value) -> Result<(MessageId, String), ServiceError> {
    let raw = v.get("messageId").and_then(Value::as_str).ok_or_else(|| invalid("messageId is required"))?;
    let id = raw.parse().map_err(|e| invalid(format!("messageId: {e}")))?;
    let emoji = v.get("emoji").and_then(Value::as_str).ok_or_else(|| invalid("emoji is required"))?;
    Ok((id, emoji.to_owned()))
}

pub fn delivered(v: &Value) -> Result<(ConversationId, MessageId), ServiceError> {
    let conv = conversation(v)?;
    let raw = v.get("messageId").and_then(Value::as_str).ok_or_else(|| invalid("messageId is required"))?;
    Ok((conv, raw.parse().map_err(|e| invalid(format!("messageId: {e}")))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "65a1b2c3d4e5f60718293a4b";

    #[test]
    fn join_accepts_both_shapes() {
        assert_eq!(join(&json!(ID)).expect("string").1, None);
        assert_eq!(join(&json!({"conversationId": ID, "lastSeq": 7})).expect("object").1, Some(7));
        assert!(join(&json!({"conversationId": ID, "lastSeq": -1})).is_err());
        assert!(join(&json!({"conversationId": ID, "lastSeq": "7"})).is_err());
        assert!(join(&json!(42)).is_err());
        assert!(join(&json!(null)).is_err());
        assert!(join(&json!("nope")).is_err());
    }

    #[test]
    fn send_payload_accepts_message_or_content() {
        let p = send(json!({"conversationId": ID, "message": "hi", "senderId": "ignored"})).expect("seed shape");
        assert_eq!(p.content, "hi");
        assert!(send(json!({"conversationId": ID, "content": 5})).is_err());
        assert!(send(json!("just a string")).is_err());
    }
}
