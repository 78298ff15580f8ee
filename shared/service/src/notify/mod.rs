//! Notifications for people who are not looking: Web Push to their
//! browsers ([`webpush`]) within seconds, an email when messages stay
//! unread ([`email`], which people can answer), with per-person preferences.
//!
//! # How a notification travels
//! A stored message already records its `message.created` outbox event in
//! the same write (see [`crate::webhooks`]). When the webhook worker fans a
//! pass of events out, [`Notifier::plan`] adds one delivery per browser of
//! the recipient — the participant who did not send it — beside the
//! webhook deliveries, in the same store call. From there notifications
//! share the webhook machinery: a lease per attempt (one holder at a time,
//! on any number of pods), the retry schedule, per-owner fairness, and
//! at-least-once delivery of a fixed id, so a pod killed mid-pass neither
//! loses nor doubles one.
//!
//! # Who gets one
//! Never the sender. In a group, every other member (and the business when
//! a customer wrote), each customer by their own read position
//! ([`omnibiz_domain::webhook::UnreadCheck::member`]). A push is due [`NotifyConfig::push_delay`] after the
//! message and is skipped, when due, if the recipient has read it, has a
//! live socket (the console shows its own notification when its tab is
//! hidden), turned push off, or muted the conversation. A conversation's
//! burst collapses: time is cut in windows of `push_delay`, and every
//! message of one window maps to one delivery per browser
//! (`push_<conversation>.<subscription>.<window>`, the same on every pod),
//! due `push_delay` after a message of it and never before the window ends
//! — so it shows the window's latest message, and each message is shown by
//! at most one push. At most one push per conversation and browser per
//! window, whatever the rate (`Topic` lets the push service replace one
//! still waiting, too).
//!
//! # Email
//! One per conversation burst: the delivery's id names the recipient's
//! first unread message (`mail_<conversation>_<side>_<seq>`), so every
//! message until they read takes the same one, due the business's email
//! delay after the first (default [`email::MailConfig::default_delay`]).
//! When due it is skipped if read, turned off or muted; looked at again a
//! delay later while the recipient is connected (they may leave without
//! reading; for up to a day); postponed past the business's quiet hours;
//! and otherwise reports the
//! latest unread messages with a signed reply address and a one-click
//! unsubscribe link (RFC 8058).
//!
//! # Safety
//! A subscription's endpoint is a URL the browser (so: anyone with a
//! token) chose. It passes the webhooks' address guard when saved and on
//! every request — `https` and public addresses only, no redirects — or an
//! attacker could aim our pods at the cluster's insides. A push service's
//! 404 or 410 removes the subscription; 429, 5xx and transport failures are
//! retried on the schedule while the message is still within its `TTL`.

pub mod email;
mod plan;
pub mod webpush;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use omnibiz_domain::notification::PreviewMode;
use omnibiz_domain::webhook::Target;
use omnibiz_domain::{ConversationId, Party, SubscriptionId};
use omnibiz_store::{MessageQuery, Store, StoreResult};
use serde_json::{Value, json};

use crate::webhooks::guard::Guard;
use crate::webhooks::{Attempt, Delivery, DeliveryStatus, describe, push_log, retry_delay};
use email::{Burst, Line, Mailer};
use webpush::{Urgency, Vapid};

/// How notifications go out (`push_*` settings).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Our VAPID identity; `None` turns Web Push off (subscriptions are refused).
    pub vapid: Option<Arc<Vapid>>,
    /// How long after a message its push is due (a reader who reads it
    /// sooner, on any device, gets none).
    pub push_delay: Duration,
    /// How long a push service keeps trying to reach an offline device.
    pub push_ttl: Duration,
    /// Browsers one person may subscribe.
    pub max_subscriptions: usize,
    /// The first retry delay (the webhooks' schedule scales from it).
    pub retry_base: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    pub guard: Guard,
}

/// Plans and sends notifications (see the module docs).
pub struct Notifier {
    store: Arc<dyn Store>,
    cfg: NotifyConfig,
    client: reqwest::Client,
    /// Notification emails; `None` when not configured.
    mailer: Option<Arc<Mailer>>,
}

/// Characters of a message a `short` preview shows.
const SHORT_PREVIEW: usize = 40;
/// Characters of a message a `full` preview shows at most (a lock screen
/// shows a few lines; the payload limit is checked after escaping).
const FULL_PREVIEW: usize = 1_000;

impl Notifier {
    pub fn new(store: Arc<dyn Store>, cfg: NotifyConfig) -> Self {
        let client = cfg.guard.client(cfg.timeout);
        Self { store, cfg, client, mailer: None }
    }

    /// Sends notification emails with this mailer.
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.cfg
    }

    pub fn mailer(&self) -> Option<&Arc<Mailer>> {
        self.mailer.as_ref()
    }

    /// What this process sends, for the start-up banner.
    pub fn describe(&self) -> String {
        let push = if self.cfg.vapid.is_some() { "Web Push on" } else { "Web Push off (no OMNIBIZ_VAPID_PRIVATE_KEY)" };
        let email =
            self.mailer.as_ref().map_or_else(|| "emails off (no OMNIBIZ_SMTP_URL)".to_owned(), |m| m.describe());
        format!("{push}; {email}")
    }

    /// Whether this process can send deliveries of this channel (a key for
    /// push, a mailer for email).
    pub fn handles(&self, target: Target) -> bool {
        match target {
            Target::Push(_) => self.cfg.vapid.is_some(),
            Target::Email(_) => self.mailer.is_some(),
            Target::Webhook(_) => false,
        }
    }

    /// One attempt at a notification delivery the worker claimed (its
    /// unread condition already checked): sets its status, next time and log.
    pub async fn attempt(&self, d: &mut Delivery) -> StoreResult<()> {
        match d.target {
            Target::Push(sid) => self.push(d, sid).await,
            Target::Email(party) => self.email(d, party).await,
            Target::Webhook(_) => {
                skip(d, "not a notification", "skipped");
                Ok(())
            }
        }
    }

    async fn push(&self, d: &mut Delivery, sid: SubscriptionId) -> StoreResult<()> {
        let Some(vapid) = self.cfg.vapid.clone() else {
            skip(d, "not sent: Web Push is not configured on this deployment", "skipped");
            return Ok(());
        };
        let Some(sub) = self.store.get_subscription(sid).await? else {
            skip(d, "not sent: the subscription was removed", "skipped");
            return Ok(());
        };
        let Some(conv) = self.store.get_conversation(d.conversation).await? else {
            skip(d, "not sent: the conversation is gone", "skipped");
            return Ok(());
        };
        // The window's latest message is what the notification shows (a later
        // window's messages are its own push's); none left in it: nothing to say.
        let side = sub.party.side();
        let window = serde_json::from_str::<Value>(&d.body).ok().and_then(|b| b["window"].as_i64());
        let end = window.map(|w| self.window_end(w));
        let q = MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 20, include_private: false };
        let recent = self.store.list_messages(&q).await?;
        let Some(latest) = recent.iter().rev().find(|m| end.is_none_or(|end| m.created_at < end)) else {
            skip(d, "not sent: no message of its window is among the conversation's latest", "collapsed");
            return Ok(());
        };
        let (written_since, read, unread) = match group_reader(&*self.store, &conv, sub.party).await? {
            Some(GroupReader::Left) => {
                skip(d, "not sent: the recipient left the group", "skipped");
                return Ok(());
            }
            Some(GroupReader::Member(c, o)) => (latest.sender_id == c.to_hex(), o.read_seq, o.unread),
            None => (latest.sender_side == side, conv.read_seq.get(side), conv.unread.get(side)),
        };
        if written_since {
            skip(d, "not sent: the recipient has written since", "skipped");
            return Ok(());
        }
        if read >= latest.seq || latest.deleted {
            skip(d, "not sent: the recipient has read it", "skipped");
            return Ok(());
        }
        let prefs = self.store.preferences(sub.party).await?;
        if !prefs.push {
            skip(d, "not sent: the recipient turned push notifications off", "skipped");
            return Ok(());
        }
        if prefs.is_muted(d.conversation) {
            skip(d, "not sent: the recipient muted the conversation", "skipped");
            return Ok(());
        }
        let view = serde_json::to_value(omnibiz_domain::views::MessageView::from(latest)).unwrap_or_default();
        let payload = payload(&view, d.conversation, unread, prefs.preview);
        let topic = format!("c{}", d.conversation.to_hex());
        let prepared = async {
            let keys = webpush::browser_keys(&sub.p256dh, &sub.auth)?;
            let url = self.check_endpoint(&sub.endpoint, false).await?;
            webpush::request(&vapid, url.as_str(), &keys, &payload, self.cfg.push_ttl, Urgency::High, &topic)
        }
        .await;
        let req = match prepared {
            Ok(r) => r,
            Err(why) => {
                // Nothing a retry would change.
                d.attempts += 1;
                d.status = DeliveryStatus::Failed;
                push_log(d, Attempt { at: Utc::now(), status: None, latency_ms: 0, error: Some(why), response: None });
                count("push", "failed");
                return Ok(());
            }
        };
        let attempt = self.send(req).await;
        d.attempts += 1;
        let status = attempt.status;
        push_log(d, attempt);
        match status {
            Some(s) if (200..300).contains(&s) => {
                d.status = DeliveryStatus::Succeeded;
                count("push", "sent");
            }
            Some(404 | 410) => {
                // RFC 8030 §6.2: the subscription expired or was withdrawn; it never comes back.
                self.store.delete_subscription(sid, None).await?;
                d.status = DeliveryStatus::Skipped;
                count("push", "unsubscribed");
            }
            Some(429) | Some(500..=599) | None => {
                let give_up = d.created_at + chrono::Duration::from_std(self.cfg.push_ttl).unwrap_or_default();
                schedule_retry(d, true, self.cfg.retry_base, give_up);
            }
            Some(_) => {
                // 400 (malformed), 401/403 (our VAPID key refused), 413: a retry sends the same.
                d.status = DeliveryStatus::Failed;
                count("push", "failed");
            }
        }
        Ok(())
    }

    /// An email whose recipient is connected when it falls due: looked at
    /// again one delay later (they may leave without reading), for up to a
    /// day. False when the day is over (it is then skipped).
    pub fn postpone_email(&self, d: &mut Delivery) -> bool {
        let Some(mailer) = &self.mailer else { return false };
        let next = Utc::now() + chrono::Duration::from_std(mailer.config().default_delay).unwrap_or_default();
        if next > d.created_at + chrono::Duration::days(1) {
            return false;
        }
        d.next_at = next;
        count("email", "postponed");
        true
    }

    async fn email(&self, d: &mut Delivery, party: Party) -> StoreResult<()> {
        let Some(mailer) = self.mailer.clone() else {
            skip(d, "not sent: email is not configured on this deployment", "skipped");
            return Ok(());
        };
        let Some(conv) = self.store.get_conversation(d.conversation).await? else {
            skip(d, "not sent: the conversation is gone", "skipped");
            return Ok(());
        };
        let prefs = self.store.preferences(party).await?;
        if !prefs.email {
            skip(d, "not sent: the recipient turned email notifications off", "skipped");
            return Ok(());
        }
        if prefs.is_muted(d.conversation) {
            skip(d, "not sent: the recipient muted the conversation", "skipped");
            return Ok(());
        }
        let now = Utc::now();
        let business = self.store.preferences(Party::Owner(conv.business_owner_id)).await?;
        if let Some(end) = business.quiet_hours.and_then(|q| q.end_after(now)) {
            // Not an attempt: the same email, once the business's quiet hours end.
            d.next_at = end;
            let why = format!("postponed: the business's quiet hours end at {}", omnibiz_domain::views::iso(end));
            push_log(d, Attempt { at: now, status: None, latency_ms: 0, error: Some(why), response: None });
            count("email", "postponed");
            return Ok(());
        }
        let own = match group_reader(&*self.store, &conv, party).await? {
            Some(GroupReader::Left) => {
                skip(d, "not sent: the recipient left the group", "skipped");
                return Ok(());
            }
            Some(GroupReader::Member(c, o)) => Some((c, o)),
            None => None,
        };
        // The customer the email concerns: the recipient, or the one the
        // business talks with (a group has none: its title stands for them).
        let customer_id = match party {
            Party::Customer(c) => Some(c),
            Party::Owner(_) => conv.group.is_none().then_some(conv.customer_id),
        };
        let customer = match customer_id {
            Some(c) => self.store.get_customer(c).await?.map(Some),
            None => Some(None),
        };
        let (Some(owner), Some(customer)) = (self.store.get_user(conv.business_owner_id).await?, customer) else {
            skip(d, "not sent: an account of the conversation is gone", "skipped");
            return Ok(());
        };
        let business_name = owner.business_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or(owner.name.clone());
        let group_title = conv.group.as_ref().map(|g| g.title.clone());
        let (address, name, sender_name) = match (party, &customer) {
            (Party::Customer(_), Some(c)) => (
                c.email.as_str(),
                c.name.as_str(),
                group_title.map_or_else(|| business_name.clone(), |t| format!("{t} ({business_name})")),
            ),
            (_, c) => (
                owner.email.as_str(),
                owner.name.as_str(),
                group_title.or_else(|| c.as_ref().map(|c| c.name.clone())).unwrap_or_default(),
            ),
        };
        if address.trim().is_empty() {
            skip(d, "not sent: the recipient has no email address", "skipped");
            return Ok(());
        }
        let to = match address.trim().parse::<lettre::Address>() {
            Ok(a) => lettre::message::Mailbox::new(Some(name.to_owned()), a),
            Err(e) => {
                let give_up = d.created_at;
                failed(d, format!("the recipient's address {address:?}: {e}"), false, self.cfg.retry_base, give_up);
                return Ok(());
            }
        };
        let side = party.side();
        // A group's customer: their own position; someone else's message is theirs to read.
        let member = own.map(|(c, _)| c);
        let (read, unread_count) = match own {
            Some((_, o)) => (o.read_seq, o.unread),
            None => (conv.read_seq.get(side), conv.unread.get(side)),
        };
        let q = MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 50, include_private: false };
        let recent = self.store.list_messages(&q).await?;
        let others = |m: &omnibiz_domain::Message| match member {
            Some(c) => m.sender_id != c.to_hex(),
            None => m.sender_side != side,
        };
        let unread: Vec<&omnibiz_domain::Message> =
            recent.iter().filter(|m| m.seq > read && others(m) && !m.deleted && !m.system).collect();
        let shown = &unread[unread.len().saturating_sub(email::MESSAGES_PER_EMAIL)..];
        if shown.is_empty() {
            skip(d, "not sent: nothing is unread", "skipped");
            return Ok(());
        }
        let burst = Burst {
            to,
            recipient: party,
            conversation: conv.id,
            business_name: &business_name,
            sender_name: &sender_name,
            lines: shown.iter().map(|m| Line { sender: &m.sender_name, message: m }).collect(),
            unread: unread_count.max(i64::try_from(shown.len()).unwrap_or(0)),
            can_reply: member.is_none(),
        };
        let give_up = d.created_at + chrono::Duration::days(1);
        let email = match mailer.compose(&burst, now) {
            Ok(e) => e,
            Err(why) => {
                failed(d, why, false, self.cfg.retry_base, give_up);
                return Ok(());
            }
        };
        let start = Instant::now();
        match mailer.send(email).await {
            Ok(()) => {
                d.attempts += 1;
                d.status = DeliveryStatus::Succeeded;
                let latency_ms = start.elapsed().as_millis() as i64;
                push_log(d, Attempt { at: now, status: None, latency_ms, error: None, response: Some("sent".into()) });
                count("email", "sent");
            }
            Err(f) => failed(d, f.reason, f.transient, self.cfg.retry_base, give_up),
        }
        Ok(())
    }

    /// A push endpoint as the guard sees it, plus `https` unless private
    /// targets are allowed (tests, on-premises push services). `resolve`
    /// also resolves its name (when a subscription is saved).
    pub async fn check_endpoint(&self, raw: &str, resolve: bool) -> Result<reqwest::Url, String> {
        check_endpoint(self.cfg.guard, raw, resolve).await
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> Attempt {
        let at = Utc::now();
        let start = Instant::now();
        let result = match reqwest::Request::try_from(req) {
            Ok(r) => self.client.execute(r).await,
            Err(e) => Err(e),
        };
        let latency_ms = start.elapsed().as_millis() as i64;
        match result {
            Ok(res) => {
                let status = res.status().as_u16();
                // Push services answer with a short body at most; keep a little of it.
                let text = tokio::time::timeout(Duration::from_secs(2), res.text()).await.ok().and_then(Result::ok);
                let excerpt: Option<String> =
                    text.map(|t| t.chars().take(256).collect::<String>()).filter(|t| !t.is_empty());
                Attempt { at, status: Some(status), latency_ms, error: None, response: excerpt }
            }
            Err(e) => Attempt { at, status: None, latency_ms, error: Some(describe(&e)), response: None },
        }
    }
}

async fn check_endpoint(guard: Guard, raw: &str, resolve: bool) -> Result<reqwest::Url, String> {
    let url = guard.check(raw, resolve).await.map_err(|e| e.replacen("url:", "endpoint:", 1))?;
    if url.scheme() != "https" && !guard.allow_private {
        return Err("endpoint: must be an https:// URL (push services are)".into());
    }
    Ok(url)
}

/// A group customer's own read state, as a notification due for them needs it.
pub(crate) enum GroupReader {
    /// No longer a member: nothing more for them.
    Left,
    /// A member, with their own read position and unread count.
    Member(omnibiz_domain::CustomerId, omnibiz_store::ReadOutcome),
}

/// For a customer of a group conversation: their own read state (or that
/// they left it). `None` for anyone else: their side's state is the
/// conversation's own.
pub(crate) async fn group_reader<S: omnibiz_store::ConversationStore + ?Sized>(
    store: &S,
    conv: &omnibiz_domain::Conversation,
    party: Party,
) -> StoreResult<Option<GroupReader>> {
    let (Some(g), Party::Customer(c)) = (&conv.group, party) else { return Ok(None) };
    if !g.members.contains(&c) {
        return Ok(Some(GroupReader::Left));
    }
    // `up_to` 0 moves nothing: it reads the position and counts.
    Ok(Some(GroupReader::Member(c, store.mark_member_read(conv.id, c, 0, Utc::now()).await?)))
}

/// `notifications_total{channel, outcome}`: sent, failed, retried, collapsed, unsubscribed, skipped, postponed.
pub(crate) fn count(channel: &'static str, outcome: &'static str) {
    metrics::counter!("notifications_total", "channel" => channel, "outcome" => outcome).increment(1);
}

/// The metrics label of a delivery's channel.
pub(crate) fn channel_label(t: Target) -> &'static str {
    match t {
        Target::Webhook(_) => "webhook",
        Target::Push(_) => "push",
        Target::Email(_) => "email",
    }
}

fn skip(d: &mut Delivery, why: &str, outcome: &'static str) {
    d.status = DeliveryStatus::Skipped;
    push_log(d, Attempt { at: Utc::now(), status: None, latency_ms: 0, error: Some(why.into()), response: None });
    count(channel_label(d.target), outcome);
}

/// Records an attempt that failed before or without a response, and whether to retry.
fn failed(d: &mut Delivery, why: String, transient: bool, retry_base: Duration, give_up_at: DateTime<Utc>) {
    d.attempts += 1;
    push_log(d, Attempt { at: Utc::now(), status: None, latency_ms: 0, error: Some(why), response: None });
    schedule_retry(d, transient, retry_base, give_up_at);
}

/// After a failed attempt: due again on the retry schedule while that is
/// before `give_up_at` and the failure may pass, else failed for good.
fn schedule_retry(d: &mut Delivery, transient: bool, retry_base: Duration, give_up_at: DateTime<Utc>) {
    let next = transient
        .then(|| retry_delay(u32::try_from(d.attempts).unwrap_or(u32::MAX), retry_base))
        .flatten()
        .map(|delay| Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default())
        .filter(|at| *at < give_up_at);
    match next {
        Some(at) => {
            d.status = DeliveryStatus::Pending;
            d.next_at = at;
            count(channel_label(d.target), "retried");
        }
        None => {
            d.status = DeliveryStatus::Failed;
            count(channel_label(d.target), "failed");
        }
    }
}

/// The JSON a service worker receives: who wrote, a preview as the
/// recipient chose, the conversation, its unread count, and where to open
/// it — always within [`webpush::MAX_PAYLOAD`].
pub fn payload(message: &Value, conversation: ConversationId, unread: i64, mode: PreviewMode) -> Vec<u8> {
    let content = message["content"].as_str().unwrap_or_default();
    let attachments = message["attachments"].as_array().map_or(0, Vec::len);
    let voice = message["attachments"][0]["audio"].is_object();
    let text = match (content.is_empty(), attachments, voice) {
        (false, ..) => content.to_owned(),
        (true, 0, _) => String::new(),
        (true, _, true) => "Voice message".to_owned(),
        (true, 1, false) => "Sent an attachment".to_owned(),
        (true, n, false) => format!("Sent {n} attachments"),
    };
    let mut limit = match mode {
        PreviewMode::Full => FULL_PREVIEW,
        PreviewMode::Short => SHORT_PREVIEW,
        PreviewMode::None => 0,
    };
    let title = omnibiz_domain::preview(message["senderName"].as_str().unwrap_or_default(), 100);
    loop {
        let body = if limit == 0 { "New message".to_owned() } else { omnibiz_domain::preview(&text, limit) };
        let v = json!({
            "type": "message",
            "conversationId": conversation.to_hex(),
            "messageId": message["id"],
            "seq": message["seq"],
            "title": title,
            "body": body,
            "unread": unread,
            "url": format!("/?conversation={}", conversation.to_hex()),
        });
        let bytes = v.to_string().into_bytes();
        if bytes.len() <= webpush::MAX_PAYLOAD || limit == 0 {
            return bytes;
        }
        limit /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_must_be_public_https() {
        let strict = Guard { allow_private: false };
        for bad in [
            "http://push.example.com/x",
            "https://127.0.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]:8443/x",
            "https://localhost/x",
            "https://user:pw@push.example.com/x",
        ] {
            let e = check_endpoint(strict, bad, false).await.expect_err(bad);
            assert!(e.starts_with("endpoint:"), "{bad}: {e}");
        }
        assert!(check_endpoint(strict, "https://fcm.googleapis.com/fcm/send/abc", false).await.is_ok());
        let open = Guard { allow_private: true };
        assert!(check_endpoint(open, "http://127.0.0.1:9/push/x", false).await.is_ok());
    }

    #[test]
    fn payloads_follow_the_preview_mode_and_fit_a_push_message() {
        let c = ConversationId::new();
        let m = json!({"id": "m1", "seq": 4, "senderName": "Acme Support", "content": "Your order ships today", "attachments": []});
        let full: Value = serde_json::from_slice(&payload(&m, c, 3, PreviewMode::Full)).expect("json");
        assert_eq!(full["body"], "Your order ships today");
        assert_eq!((full["title"].as_str(), full["unread"].as_i64()), (Some("Acme Support"), Some(3)));
        let short: Value = serde_json::from_slice(&payload(&m, c, 3, PreviewMode::Short)).expect("json");
        assert_eq!(short["body"], "Your order ships today");
        let none: Value = serde_json::from_slice(&payload(&m, c, 3, PreviewMode::None)).expect("json");
        assert_eq!(none["body"], "New message");
        assert!(!none.to_string().contains("ships"));
        // Characters that escape to six bytes each still fit.
        let long = json!({"senderName": "x", "content": "\u{1}".repeat(5_000), "attachments": []});
        assert!(payload(&long, c, 1, PreviewMode::Full).len() <= webpush::MAX_PAYLOAD);
        let long = json!({"senderName": "x", "content": "é".repeat(5_000), "attachments": []});
        let p: Value = serde_json::from_slice(&payload(&long, c, 1, PreviewMode::Short)).expect("json");
        assert_eq!(p["body"].as_str().map(|s| s.chars().count()), Some(SHORT_PREVIEW + 1));
        let voice = json!({"senderName": "x", "content": "", "attachments": [{"audio": {"durationMs": 1}}]});
        let p: Value = serde_json::from_slice(&payload(&voice, c, 1, PreviewMode::Full)).expect("json");
        assert_eq!(p["body"], "Voice message");
    }
}
