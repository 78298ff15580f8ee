//! Webhooks: a business owner's HTTP endpoints hear about every message and
//! conversation change, even when nobody is online.
//!
//! # How an event travels
//! 1. **Outbox, in the same store operation as the change.** Storing a
//!    message, creating or updating a conversation and marking messages read
//!    record an [`OutboxEvent`] atomically with the change itself (editing
//!    and deleting a message too): on SQLite
//!    a row in `hook_events` inside the same transaction; on MongoDB (no
//!    multi-document transactions assumed) inside the changed document — a
//!    `hook` flag on a new message, an entry in an edited or deleted
//!    message's `hooks` map, or one in the conversation's `hooks` map. A process killed at any moment either stored the change *and*
//!    its event, or neither.
//! 2. **Fan-out** ([`worker`]): any `api` pod takes pending events, creates
//!    one [`Delivery`] per subscribed endpoint of the conversation's owner
//!    (its id is `<event id>.<endpoint id>`, so doing it twice creates nothing
//!    new), then marks the event done. The body is fixed at this point, so
//!    every attempt and redelivery sends the same bytes.
//! 3. **Delivery**: workers claim due deliveries with a lease (an atomic
//!    conditional update: one holder at a time, whatever the number of
//!    pods), POST them, and record each attempt (status, latency, an excerpt
//!    of the response) in the delivery's log. Failures retry on the
//!    [`RETRY_SCHEDULE`] (about a day) with jitter; a delivery whose holder
//!    died is claimed again once its lease expires — at least once, never
//!    two holders at the same time. An endpoint whose every attempt failed
//!    for a day, or that failed `webhook_disable_after` times in a row, is
//!    disabled, with the reason readable over REST; its pending deliveries
//!    wait (`paused`) until it is enabled again.
//! 4. **`message.unread`**: for endpoints that subscribe to it, fan-out also
//!    schedules a delivery due `webhook_unread_after` after the message was
//!    stored, with a condition checked when it is due: the recipient has no
//!    live socket (presence) and has not read the message. Otherwise it is
//!    `skipped`.
//!
//! # Signature
//! `OmniBiz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! as Stripe does: a receiver recomputes it over the raw body, compares in
//! constant time, and rejects a `t` too far from its clock (replays).
//! `OmniBiz-Event-Id` is the same for every delivery attempt of one event:
//! deduplicate on it.
//!
//! # Safety
//! See [`guard`]: no private, loopback or link-local targets unless
//! configured, checked when an endpoint is saved and again on every
//! connection (DNS answers are filtered, so rebinding does not help); no
//! redirects; connect and total timeouts; at most 64 KiB of a response is
//! read. Secrets are never logged (`Debug` redacts them).

pub mod guard;
pub mod worker;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

use crate::domain::{ConversationId, EndpointId, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum HookEvent {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.read")]
    MessageRead,
    #[serde(rename = "message.unread")]
    MessageUnread,
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    #[serde(rename = "message.updated")]
    MessageUpdated,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
}

impl HookEvent {
    pub const ALL: [Self; 7] = [
        Self::MessageCreated,
        Self::MessageRead,
        Self::MessageUnread,
        Self::ConversationCreated,
        Self::ConversationUpdated,
        Self::MessageUpdated,
        Self::MessageDeleted,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::MessageRead => "message.read",
            Self::MessageUnread => "message.unread",
            Self::ConversationCreated => "conversation.created",
            Self::ConversationUpdated => "conversation.updated",
            Self::MessageUpdated => "message.updated",
            Self::MessageDeleted => "message.deleted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A business owner's webhook endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub owner: UserId,
    pub url: String,
    /// `whsec_…`; shown to the owner once, when created.
    pub secret: String,
    pub events: Vec<HookEvent>,
    pub description: String,
    pub enabled: bool,
    /// Why it was disabled automatically (`None` when enabled, or disabled by its owner).
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row (reset by a success).
    pub failure_streak: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn wants(&self, e: HookEvent) -> bool {
        self.events.contains(&e)
    }
}

/// A new random signing secret.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// An event recorded with the change that caused it, not yet fanned out.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Stable across retries: `msg_<message id>` or `evt_<object id>`.
    pub id: String,
    pub kind: HookEvent,
    pub conversation: ConversationId,
    pub at: DateTime<Utc>,
    /// Event-specific fields (the message for `message.created`; `{readerRole, upToSeq}`; …).
    pub data: serde_json::Value,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`nextAttemptAt`).
    Pending,
    Succeeded,
    /// Every attempt of the retry schedule failed.
    Failed,
    /// A `message.unread` whose recipient was online or had read it.
    Skipped,
    /// Its endpoint is disabled; resumes when it is enabled.
    Paused,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Paused => "paused",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Skipped, Self::Paused]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One try at a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed without a status (timeout, connection refused, refused address…).
    pub error: Option<String>,
    /// The first 512 characters of the response body.
    pub response: Option<String>,
}

/// When `message.unread` may be sent: the recipient has not read `seq` (and is offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCheck {
    /// Who should have read it: the business owner (`true`) or the customer.
    pub recipient_owner: bool,
    pub seq: i64,
}

/// One event for one endpoint.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `<event id>.<endpoint id>`.
    pub id: String,
    pub endpoint: EndpointId,
    pub owner: UserId,
    pub event_id: String,
    pub kind: HookEvent,
    pub conversation: ConversationId,
    /// The exact JSON body sent on every attempt.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest attempts, oldest first (at most [`LOG_LIMIT`]).
    pub log: Vec<Attempt>,
    pub unread_check: Option<UnreadCheck>,
}

/// Attempts kept per delivery.
pub const LOG_LIMIT: usize = 20;

/// Delays before attempt 2, 3, …, in units of the base delay (10 s by
/// default): 10 s, 30 s, 2 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h,
/// 8 h — 12 attempts over about 24 h (23 h 53 min before jitter). Each is jittered by ±20 %.
pub const RETRY_SCHEDULE: [u32; 11] = [1, 3, 12, 30, 90, 180, 360, 720, 1440, 2880, 2880];

/// The delay before the next attempt after `attempts` failed ones; `None` once the schedule is spent.
pub fn retry_delay(attempts: u32, base: Duration) -> Option<Duration> {
    let units = *RETRY_SCHEDULE.get(attempts.checked_sub(1)? as usize)?;
    let jitter: f64 = rand::random_range(0.8..1.2);
    Some(base.mul_f64(f64::from(units) * jitter))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON body of an event, fixed at fan-out.
pub fn body(e: &OutboxEvent, id: &str, kind: HookEvent, owner: UserId, customer: &str) -> String {
    serde_json::json!({
        "id": id,
        "type": kind.as_str(),
        "createdAt": crate::service::views::iso(e.at),
        "businessOwnerId": owner.to_hex(),
        "customerId": customer,
        "conversationId": e.conversation.to_hex(),
        "data": e.data,
    })
    .to_string()
}

/// The body data of `message.updated` / `message.deleted`: the same from both stores.
pub fn change_data(
    kind: HookEvent,
    message: crate::domain::MessageId,
    conversation: ConversationId,
    content: Option<&str>,
    at: DateTime<Utc>,
) -> serde_json::Value {
    let at = crate::service::views::iso(at);
    match kind {
        HookEvent::MessageDeleted => serde_json::json!({
            "messageId": message.to_hex(), "conversationId": conversation.to_hex(), "deletedAt": at,
        }),
        _ => serde_json::json!({
            "messageId": message.to_hex(), "conversationId": conversation.to_hex(),
            "content": content.unwrap_or_default(), "editedAt": at,
        }),
    }
}

/// The outbox event id of a message change (a BSON-safe key, unique per change).
pub fn change_event_id(kind: HookEvent, message: crate::domain::MessageId, at: DateTime<Utc>) -> String {
    let tag = if kind == HookEvent::MessageDeleted { "del" } else { "upd" };
    format!("{tag}_{}_{}", message.to_hex(), at.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test",b"1700000000.{\"a\":1}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn the_schedule_spans_about_a_day_then_gives_up() {
        let base = Duration::from_secs(10);
        let total: f64 = RETRY_SCHEDULE.iter().map(|u| f64::from(*u) * 10.0).sum();
        assert!((82_800.0..=90_000.0).contains(&total), "about a day: {total}");
        let first = retry_delay(1, base).expect("a retry");
        assert!(first >= Duration::from_secs(8) && first <= Duration::from_secs(12), "{first:?}");
        assert!(retry_delay(11, base).is_some());
        assert!(retry_delay(12, base).is_none());
        assert!(retry_delay(0, base).is_none());
    }

    #[test]
    fn events_round_trip_and_secrets_stay_out_of_debug() {
        for e in HookEvent::ALL {
            assert_eq!(HookEvent::parse(e.as_str()), Some(e));
        }
        let now = Utc::now();
        let e = Endpoint {
            id: EndpointId::new(),
            owner: UserId::new(),
            url: "https://example.com/hook".into(),
            secret: new_secret(),
            events: vec![HookEvent::MessageCreated],
            description: String::new(),
            enabled: true,
            disabled_reason: None,
            failure_streak: 0,
            created_at: now,
            updated_at: now,
        };
        assert!(e.secret.starts_with("whsec_") && e.secret.len() == 54);
        assert!(!format!("{e:?}").contains(&e.secret));
    }
}
