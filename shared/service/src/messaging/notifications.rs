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
