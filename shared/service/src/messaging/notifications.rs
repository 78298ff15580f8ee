//! Notifications, the person's side: their browsers' push subscriptions
//! and their preferences (how notifications travel: [`crate::notify`]).

use chrono::Utc;
use omnibiz_domain::notification::{MAX_MUTED, Preferences, PushSubscription};
use omnibiz_domain::views::iso;
use omnibiz_domain::{Side, SubscriptionId};
use serde::Serialize;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::notify::webpush;

/// Most characters of a user agent kept with a subscription.
const USER_AGENT_CHARS: usize = 200;
/// The shortest and longest email delay a business may choose.
const EMAIL_DELAY_SECS: std::ops::RangeInclusive<u32> = 60..=86_400;

/// A browser subscription as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub endpoint: String,
    pub user_agent: String,
    pub created_at: String,
}

impl From<&PushSubscription> for SubscriptionView {
    fn from(s: &PushSubscription) -> Self {
        Self {
            id: s.id.to_hex(),
            endpoint: s.endpoint.clone(),
            user_agent: s.user_agent.clone(),
            created_at: iso(s.created_at),
        }
    }
}

/// What `pushManager.subscribe(...).toJSON()` gives, plus the browser's name.
#[derive(Debug, Clone)]
pub struct SubscribeCommand {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: String,
}

impl Messaging {
    /// The VAPID public key browsers subscribe with; 501 when Web Push is not configured.
    pub fn push_public_key(&self) -> ServiceResult<String> {
        let n = self.push_notifier()?;
        Ok(n.config().vapid.as_ref().map(|v| v.public_key().to_owned()).unwrap_or_default())
    }

    fn push_notifier(&self) -> ServiceResult<&crate::notify::Notifier> {
        self.notifier.as_deref().filter(|n| n.config().vapid.is_some()).ok_or_else(|| {
            ServiceError::Disabled("Web Push is not configured on this server (OMNIBIZ_VAPID_PRIVATE_KEY)".into())
        })
    }

    /// Registers one of the actor's browsers. The endpoint passes the
    /// webhooks' address guard (resolved now, and again on every push);
    /// a browser already registered is updated, not counted twice.
    pub async fn subscribe(&self, actor: &Actor, cmd: SubscribeCommand) -> ServiceResult<(SubscriptionView, bool)> {
        let notifier = self.push_notifier()?;
        webpush::browser_keys(&cmd.p256dh, &cmd.auth).map_err(ServiceError::Invalid)?;
        let url = notifier.check_endpoint(&cmd.endpoint, true).await.map_err(ServiceError::Invalid)?;
        let party = actor.principal.party();
        let existing = self.store.subscriptions_of(party).await?;
        let known = existing.iter().any(|s| s.endpoint == url.as_str());
        let max = notifier.config().max_subscriptions;
        if !known && existing.len() >= max {
            return Err(ServiceError::Conflict(format!(
                "at most {max} browsers per person; remove one first (DELETE /api/notifications/subscriptions/{{id}})"
            )));
        }
        let sub = PushSubscription {
            id: SubscriptionId::new(),
            party,
            endpoint: url.to_string(),
            p256dh: cmd.p256dh.trim().to_owned(),
            auth: cmd.auth.trim().to_owned(),
            user_agent: omnibiz_domain::preview(cmd.user_agent.trim(), USER_AGENT_CHARS),
            created_at: Utc::now(),
        };
        let stored = self.store.save_subscription(&sub).await?;
        Ok((SubscriptionView::from(&stored), !known))
    }

    /// The actor's browsers, oldest first.
    pub async fn subscriptions(&self, actor: &Actor) -> ServiceResult<Vec<SubscriptionView>> {
        let subs = self.store.subscriptions_of(actor.principal.party()).await?;
        Ok(subs.iter().map(SubscriptionView::from).collect())
    }

    /// Removes one of the actor's browsers (another person's is not found).
    pub async fn unsubscribe(&self, actor: &Actor, id: SubscriptionId) -> ServiceResult<()> {
        if self.store.delete_subscription(id, Some(actor.principal.party())).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("no such subscription".into()))
        }
    }

    pub async fn notification_preferences(&self, actor: &Actor) -> ServiceResult<Preferences> {
        Ok(self.store.preferences(actor.principal.party()).await?)
    }

    /// Replaces the actor's preferences after checking them: muted
    /// conversations must be the actor's; the email delay and quiet hours
    /// are a business owner's to set.
    pub async fn set_notification_preferences(&self, actor: &Actor, mut p: Preferences) -> ServiceResult<Preferences> {
        p.muted.sort_unstable();
        p.muted.dedup();
        if p.muted.len() > MAX_MUTED {
            return Err(ServiceError::Invalid(format!("muted: at most {MAX_MUTED} conversations")));
        }
        let before = self.store.preferences(actor.principal.party()).await?;
        for c in p.muted.iter().filter(|c| !before.muted.contains(c)) {
            // Newly muted ones only: a conversation muted earlier may since have gone.
            self.visible_conversation(actor, *c)
                .await
                .map_err(|_| ServiceError::Invalid(format!("muted: {c} is not one of your conversations")))?;
        }
        if actor.side() == Side::Customer && (p.email_delay_secs.is_some() || p.quiet_hours.is_some()) {
            return Err(ServiceError::Forbidden("emailDelaySecs and quietHours are set by the business".into()));
        }
        if let Some(d) = p.email_delay_secs
            && !EMAIL_DELAY_SECS.contains(&d)
        {
            return Err(ServiceError::Invalid(format!(
                "emailDelaySecs: between {} and {} seconds",
                EMAIL_DELAY_SECS.start(),
                EMAIL_DELAY_SECS.end()
            )));
        }
        if let Some(q) = p.quiet_hours
            && (q.start_minute >= 1440 || q.end_minute >= 1440 || !(-840..=840).contains(&q.utc_offset_minutes))
        {
            return Err(ServiceError::Invalid(
                "quietHours: startMinute and endMinute within 0–1439, utcOffsetMinutes within ±840".into(),
            ));
        }
        self.store.set_preferences(actor.principal.party(), &p).await?;
        Ok(p)
    }
}

/// Why an inbound email was refused: logged with the reason, answered with
/// a status (400 malformed, 403 not signed for this sender, 409 seen before).
fn refuse_reply(status: ServiceError, detail: &str) -> ServiceError {
    tracing::warn!(reason = %detail, "inbound email refused");
    status
}

impl Messaging {
    fn mailer(&self) -> ServiceResult<&std::sync::Arc<crate::notify::email::Mailer>> {
        self.notifier.as_ref().and_then(|n| n.mailer()).ok_or_else(|| {
            ServiceError::NotFound("notification emails are off on this server (no OMNIBIZ_SMTP_URL)".into())
        })
    }

    /// Stores an emailed reply (the raw message, as mail providers forward
    /// inbound mail) as a message from the person its signed reply address
    /// names, live to the other side like any other. Refused: no reply
    /// address of ours, a forged or expired one, a `From` that is not that
    /// person's address, an automatic reply, nothing new written, or an
    /// email already received (same `Message-ID`).
    pub async fn reply_by_email(&self, raw: &[u8], credential: Option<&str>) -> ServiceResult<super::Sent> {
        let mailer = self.mailer()?;
        if !mailer.inbound_allowed(credential) {
            return Err(refuse_reply(
                ServiceError::Unauthorized(
                    "inbound email needs OMNIBIZ_INBOUND_EMAIL_SECRET (bearer or basic auth)".into(),
                ),
                "wrong or missing inbound secret",
            ));
        }
        let Some(domain) = mailer.config().reply_domain.clone() else {
            return Err(ServiceError::NotFound(
                "reply by email is off on this server (no OMNIBIZ_MAIL_REPLY_DOMAIN)".into(),
            ));
        };
        let email = mail_parser::MessageParser::default()
            .parse(raw)
            .ok_or_else(|| ServiceError::Invalid("not an email (RFC 5322 headers expected)".into()))?;
        let auto = email.header_raw("Auto-Submitted").is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
            || email.header_raw("Precedence").is_some_and(|v| {
                matches!(v.trim().to_ascii_lowercase().as_str(), "bulk" | "junk" | "list" | "auto_reply")
            })
            || email.header_raw("X-Autoreply").is_some()
            || email.header_raw("X-Autorespond").is_some();
        if auto {
            return Err(refuse_reply(
                ServiceError::Invalid("an automatic reply (Auto-Submitted/Precedence) is not a message".into()),
                "automatic reply",
            ));
        }
        // Our address among the recipients (forwarders may keep it in Delivered-To only).
        let mut candidates: Vec<String> = Vec::new();
        for list in [email.to(), email.cc()].into_iter().flatten() {
            candidates.extend(list.iter().filter_map(|a| a.address()).map(str::to_owned));
        }
        for h in ["Delivered-To", "X-Original-To", "Envelope-To"] {
            if let Some(v) = email.header_raw(h) {
                candidates.push(v.trim().trim_matches(['<', '>']).to_owned());
            }
        }
        let ours = candidates.iter().find_map(|a| {
            let (local, d) = a.rsplit_once('@')?;
            (d.eq_ignore_ascii_case(&domain) && local.to_ascii_lowercase().starts_with("r-")).then(|| local.to_owned())
        });
        let Some(local) = ours else {
            return Err(refuse_reply(
                ServiceError::Invalid(format!("no reply address of ours (r-…@{domain}) among the recipients")),
                "no reply address",
            ));
        };
        let now = chrono::Utc::now();
        let reply = mailer.check_reply_token(&local, now).map_err(|e| {
            let why = match e {
                crate::notify::email::TokenError::Expired => {
                    "the reply address has expired; answer in the conversation"
                }
                crate::notify::email::TokenError::Forged => "the reply address is not one we signed",
                crate::notify::email::TokenError::Malformed => "the reply address is malformed",
            };
            refuse_reply(ServiceError::Forbidden(why.into()), why)
        })?;
        let conv = self.store.get_conversation(reply.conversation).await?.ok_or_else(|| {
            refuse_reply(ServiceError::NotFound("the conversation is gone".into()), "conversation gone")
        })?;
        let (principal, address) = match reply.side {
            Side::Owner => {
                let u = self.store.get_user(conv.business_owner_id).await?;
                let role = u.as_ref().map(|u| u.role).unwrap_or(omnibiz_domain::UserRole::BusinessOwner);
                (crate::auth::Principal::User { id: conv.business_owner_id, role }, u.map(|u| u.email))
            }
            Side::Customer => (
                crate::auth::Principal::Customer { id: conv.customer_id },
                self.store.get_customer(conv.customer_id).await?.map(|c| c.email),
            ),
        };
        let from = email.from().and_then(|f| f.first()).and_then(|a| a.address()).unwrap_or_default();
        let expected = address.unwrap_or_default();
        if expected.trim().is_empty() || !from.trim().eq_ignore_ascii_case(expected.trim()) {
            return Err(refuse_reply(
                ServiceError::Forbidden("this reply address belongs to someone else's email address".into()),
                &format!("From {from:?} is not the address the reply address was made for"),
            ));
        }
        let body = email.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
        let text = crate::notify::email::reply_text(&body);
        if text.is_empty() {
            return Err(ServiceError::Invalid("the reply has no new text above the quoted email".into()));
        }
        // A replayed email (the same Message-ID) is the same message: stored once, refused after.
        let key = email.message_id().map(|id| {
            use sha2::Digest as _;
            format!("email-{}", &hex::encode(sha2::Sha256::digest(id.as_bytes()))[..40])
        });
        let actor = self.actor(principal).await?;
        let cmd = super::SendCommand::parse(&conv.id.to_hex(), &text, Vec::new(), key.as_deref())?;
        let sent = self.send(&actor, cmd).await?;
        if !sent.created {
            return Err(refuse_reply(
                ServiceError::Conflict("this email was received already".into()),
                "replayed email (same Message-ID)",
            ));
        }
        crate::notify::count("email", "replied");
        Ok(sent)
    }

    /// One-click unsubscribe (RFC 8058): turns the token's person's email notifications off.
    pub async fn unsubscribe_email(&self, token: &str) -> ServiceResult<()> {
        let mailer = self.mailer()?;
        let party = mailer
            .check_unsubscribe_token(token)
            .map_err(|_| ServiceError::Forbidden("this unsubscribe link is not one we made".into()))?;
        let mut p = self.store.preferences(party).await?;
        if p.email {
            p.email = false;
            self.store.set_preferences(party, &p).await?;
            crate::notify::count("email", "unsubscribed");
        }
        Ok(())
    }
}
