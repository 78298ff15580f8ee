//! Notifications for people who are not looking: browsers' Web Push
//! subscriptions and each person's preferences (how they travel:
//! `omnibiz_service::notify`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, SubscriptionId};
use crate::party::Party;

/// A browser's push subscription (RFC 8030), as `PushManager.subscribe`
/// gives it: where to post, and the keys to encrypt for (RFC 8291).
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub id: SubscriptionId,
    pub party: Party,
    /// The push service's URL for this browser; chosen by the client, so
    /// it passes the same address guard as webhook URLs before any request.
    pub endpoint: String,
    /// The browser's P-256 public key, base64url (65 bytes uncompressed).
    pub p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    pub auth: String,
    /// What the browser said it is, to tell devices apart in a list.
    pub user_agent: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for PushSubscription {
    // The endpoint URL is a capability (anyone holding it can post to the
    // browser) and the auth secret is one: neither goes into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSubscription")
            .field("id", &self.id)
            .field("party", &self.party)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// How much of a message a notification shows (lock screens are public).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PreviewMode {
    /// The message's text, cut to fit.
    #[default]
    Full,
    /// The first few words.
    Short,
    /// "New message" and the sender's name only.
    None,
}

/// Quiet hours in the business's time zone: no email is sent from `start`
/// to `end` (minutes after midnight; `start > end` spans midnight); what is
/// due meanwhile goes out when they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuietHours {
    #[schema(minimum = 0, maximum = 1439)]
    pub start_minute: u16,
    #[schema(minimum = 0, maximum = 1439)]
    pub end_minute: u16,
    /// Minutes east of UTC.
    #[schema(minimum = -840, maximum = 840)]
    pub utc_offset_minutes: i16,
}

impl QuietHours {
    /// Whether `at` falls inside, and if so when they end.
    pub fn end_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at + chrono::Duration::minutes(i64::from(self.utc_offset_minutes));
        let minute = u16::try_from(chrono::Timelike::num_seconds_from_midnight(&local) / 60).unwrap_or(0);
        let (s, e) = (self.start_minute % 1440, self.end_minute % 1440);
        let inside = if s <= e { minute >= s && minute < e } else { minute >= s || minute < e };
        if !inside || s == e {
            return None;
        }
        let wait = (i64::from(e) - i64::from(minute)).rem_euclid(1440);
        let start_of_minute = at - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&at)));
        Some(start_of_minute + chrono::Duration::minutes(wait))
    }
}

/// One person's choices. Defaults: every channel on, nothing muted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    /// Web Push to this person's subscribed browsers.
    pub push: bool,
    /// An email when messages stay unread (needs an address on the account).
    pub email: bool,
    pub preview: PreviewMode,
    /// Conversations that notify nothing (live sockets still get everything).
    #[schema(value_type = Vec<String>, max_items = 1000)]
    #[serde(with = "hex_ids")]
    pub muted: Vec<ConversationId>,
    /// A business owner's: how long a customer's message stays unread
    /// before it is emailed (and the same for the customer's side of
    /// this business's conversations). `None`: the deployment's default.
    #[schema(minimum = 60, maximum = 86400)]
    pub email_delay_secs: Option<u32>,
    /// A business owner's: when no email goes out, to either side.
    pub quiet_hours: Option<QuietHours>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            push: true,
            email: true,
            preview: PreviewMode::Full,
            muted: Vec::new(),
            email_delay_secs: None,
            quiet_hours: None,
        }
    }
}

/// Conversations one person may mute at most.
pub const MAX_MUTED: usize = 1_000;

impl Preferences {
    pub fn is_muted(&self, c: ConversationId) -> bool {
        self.muted.contains(&c)
    }
}

/// Conversation ids as the hex strings clients use (not `{"$oid": …}`).
mod hex_ids {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ids::ConversationId;

    pub(super) fn serialize<S: Serializer>(ids: &[ConversationId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(ConversationId::to_hex))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ConversationId>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(|_| serde::de::Error::custom(format!("muted: {s:?} is not a conversation id"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn quiet_hours_span_midnight_and_say_when_they_end() {
        // 22:00–07:00 at UTC+1.
        let q = QuietHours { start_minute: 22 * 60, end_minute: 7 * 60, utc_offset_minutes: 60 };
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 10, h, m, 30).single().expect("time");
        // 21:30 UTC is 22:30 local: inside, ends at 06:00 UTC the next day.
        assert_eq!(q.end_after(at(21, 30)), Some(Utc.with_ymd_and_hms(2026, 1, 11, 6, 0, 0).single().expect("t")));
        // 05:59 UTC is 06:59 local: inside, one minute left.
        assert_eq!(q.end_after(at(5, 59)), Some(Utc.with_ymd_and_hms(2026, 1, 10, 6, 0, 0).single().expect("t")));
        // 06:00 UTC is 07:00 local: outside.
        assert_eq!(q.end_after(at(6, 0)), None);
        assert_eq!(q.end_after(at(12, 0)), None);
        let day = QuietHours { start_minute: 9 * 60, end_minute: 17 * 60, utc_offset_minutes: 0 };
        assert!(day.end_after(at(9, 0)).is_some());
        assert!(day.end_after(at(17, 0)).is_none());
    }

    #[test]
    fn preferences_default_to_every_channel_and_read_partial_json() {
        let p: Preferences = serde_json::from_str(r#"{"email":false}"#).expect("json");
        assert!(p.push && !p.email && p.muted.is_empty() && p.preview == PreviewMode::Full);
        let id = ConversationId::new();
        let json = format!(r#"{{"muted":["{id}"],"preview":"none"}}"#);
        let p: Preferences = serde_json::from_str(&json).expect("json");
        assert_eq!((p.muted.clone(), p.preview), (vec![id], PreviewMode::None));
        assert_eq!(serde_json::to_value(&p).expect("json")["muted"][0], id.to_hex());
        assert!(serde_json::from_str::<Preferences>(r#"{"muted":["nope"]}"#).is_err());
    }
}
