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
//! read. Secrets are never logged (`Debug` redacts them), and are stored
//! sealed ([`sealing`]).

pub mod guard;
pub mod sealing;
pub mod worker;

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

pub use omnibiz_domain::webhook::{
    Attempt, Delivery, DeliveryStatus, Endpoint, HookEvent, LOG_LIMIT, OutboxEvent, UnreadCheck,
};

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

/// A new random signing secret.
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// Adds an attempt to a delivery's log, keeping the latest [`LOG_LIMIT`].
pub(crate) fn push_log(d: &mut Delivery, a: Attempt) {
    d.log.push(a);
    if d.log.len() > LOG_LIMIT {
        let extra = d.log.len() - LOG_LIMIT;
        d.log.drain(..extra);
    }
}

pub(crate) fn attempt_summary(a: &Attempt) -> String {
    match (a.status, &a.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no response".into(),
    }
}

/// A transport error in words an owner can act on (never the URL's query or secrets).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirects are not followed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() { kind.to_owned() } else { format!("{kind}: {cause}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use omnibiz_domain::{EndpointId, UserId};

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
