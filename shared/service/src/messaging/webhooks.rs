//! Webhook endpoints and their delivery logs, managed by business owners
//! (see [`crate::webhooks`] for how events reach them).

use chrono::{DateTime, Utc};
use omnibiz_domain::{EndpointId, UserId};
use serde::Serialize;
use utoipa::ToSchema;

use super::views::iso;
use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::auth::Principal;
use crate::webhooks::{Attempt, Delivery, DeliveryStatus, Endpoint, HookEvent, new_secret};

/// Endpoints one owner may have.
pub const MAX_ENDPOINTS: usize = 20;

/// Fields of a create or update; `None` leaves a field alone (update) or takes the default (create).
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    /// Event type names; on create, default every type.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// An endpoint as its owner sees it (never the secret, after creation).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    #[schema(value_type = Vec<String>)]
    pub events: Vec<&'static str>,
    pub description: String,
    pub enabled: bool,
    /// Set when deliveries kept failing and the endpoint was disabled automatically.
    pub disabled_reason: Option<String>,
    /// Failed attempts in a row.
    pub failure_streak: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.to_hex(),
            url: e.url.clone(),
            events: e.events.iter().map(|x| x.as_str()).collect(),
            description: e.description.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failure_streak: e.failure_streak,
            created_at: iso(e.created_at),
            updated_at: iso(e.updated_at),
        }
    }
}

/// One event for one endpoint, with its attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    /// The same for every attempt and redelivery: receivers deduplicate on it.
    pub event_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub conversation_id: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When a pending or paused delivery is next tried.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The latest attempts, oldest first: HTTP status, latency, an excerpt of the response.
    pub log: Vec<Attempt>,
    /// The body sent (the signed bytes, parsed).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        let waiting = matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Paused);
        Self {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            kind: d.kind.as_str(),
            conversation_id: d.conversation.to_hex(),
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: waiting.then(|| iso(d.next_at)),
            created_at: iso(d.created_at),
            updated_at: iso(d.updated_at),
            log: d.log.clone(),
            payload: serde_json::from_str(&d.body).unwrap_or_default(),
        }
    }
}

fn cursor_of(d: &Delivery) -> String {
    format!("{}:{}", d.created_at.timestamp_millis(), d.id)
}

fn parse_cursor(c: &str) -> ServiceResult<(DateTime<Utc>, String)> {
    let bad = || ServiceError::Invalid("cursor: not a cursor this API returned".into());
    let (ms, id) = c.split_once(':').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}

fn parse_events(names: &[String]) -> ServiceResult<Vec<HookEvent>> {
    if names.is_empty() {
        return Err(ServiceError::Invalid("events: name at least one event type".into()));
    }
    let mut out = Vec::new();
    for n in names {
        let e = HookEvent::parse(n).ok_or_else(|| {
            let known: Vec<&str> = HookEvent::ALL.iter().map(|e| e.as_str()).collect();
            ServiceError::Invalid(format!("events: unknown type `{n}` (known: {})", known.join(", ")))
        })?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn check_description(d: &str) -> ServiceResult<String> {
    if d.chars().count() > 200 {
        return Err(ServiceError::Invalid("description: at most 200 characters".into()));
    }
    Ok(d.trim().to_owned())
}

impl Messaging {
    fn hook_owner(actor: &Actor) -> ServiceResult<UserId> {
        match actor.principal {
            Principal::User { .. } => actor.managed_business(),
            Principal::Customer { .. } => Err(ServiceError::Forbidden("only business owners manage webhooks".into())),
        }
    }

    /// The caller's endpoint, or 404 (also for another owner's).
    async fn own_endpoint(&self, actor: &Actor, id: EndpointId) -> ServiceResult<Endpoint> {
        let owner = Self::hook_owner(actor)?;
        match self.store.get_endpoint(id).await? {
            Some(e) if e.owner == owner => Ok(e),
            _ => Err(ServiceError::NotFound("webhook endpoint not found".into())),
        }
    }

    async fn checked_url(&self, url: &str) -> ServiceResult<String> {
        let url = self.hook_guard.check(url, true).await.map_err(ServiceError::Invalid)?;
        Ok(url.to_string())
    }

    /// Creates an endpoint; returns it and its signing secret (shown this once).
    pub async fn create_endpoint(&self, actor: &Actor, input: EndpointInput) -> ServiceResult<(EndpointView, String)> {
        let owner = Self::hook_owner(actor)?;
        let url = input.url.ok_or_else(|| ServiceError::Invalid("url: required".into()))?;
        let url = self.checked_url(&url).await?;
        let events = match &input.events {
            Some(names) => parse_events(names)?,
            None => HookEvent::ALL.to_vec(),
        };
        let description = check_description(input.description.as_deref().unwrap_or_default())?;
        if self.store.list_endpoints(owner).await?.len() >= MAX_ENDPOINTS {
            return Err(ServiceError::Invalid(format!("at most {MAX_ENDPOINTS} webhook endpoints per business")));
        }
        let now = Utc::now();
        let secret = new_secret();
        let stored = self.hook_secrets.as_ref().map_or_else(|| secret.clone(), |b| b.seal(&secret));
        let e = Endpoint {
            id: EndpointId::new(),
            owner,
            url,
            secret: stored,
            events,
            description,
            enabled: input.enabled.unwrap_or(true),
            disabled_reason: None,
            failure_streak: 0,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_endpoint(&e).await?;
        Ok((EndpointView::from(&e), secret))
    }

    pub async fn list_endpoints(&self, actor: &Actor) -> ServiceResult<Vec<EndpointView>> {
        let owner = Self::hook_owner(actor)?;
        Ok(self.store.list_endpoints(owner).await?.iter().map(EndpointView::from).collect())
    }

    pub async fn endpoint(&self, actor: &Actor, id: EndpointId) -> ServiceResult<EndpointView> {
        Ok(EndpointView::from(&self.own_endpoint(actor, id).await?))
    }

    /// Changes an endpoint. Enabling it clears an automatic disable and
    /// resumes its paused deliveries; disabling pauses the pending ones.
    pub async fn update_endpoint(
        &self,
        actor: &Actor,
        id: EndpointId,
        input: EndpointInput,
    ) -> ServiceResult<EndpointView> {
        let mut e = self.own_endpoint(actor, id).await?;
        if let Some(url) = &input.url {
            e.url = self.checked_url(url).await?;
        }
        if let Some(names) = &input.events {
            e.events = parse_events(names)?;
        }
        if let Some(d) = &input.description {
            e.description = check_description(d)?;
        }
        let now = Utc::now();
        let was = e.enabled;
        if let Some(enabled) = input.enabled {
            e.enabled = enabled;
            if enabled {
                e.disabled_reason = None;
                e.failure_streak = 0;
            }
        }
        e.updated_at = now;
        if !self.store.save_endpoint(&e).await? {
            return Err(ServiceError::NotFound("webhook endpoint not found".into()));
        }
        match (was, e.enabled, input.enabled) {
            (_, true, Some(true)) => {
                self.store.move_deliveries(id, DeliveryStatus::Paused, DeliveryStatus::Pending, now).await?;
            }
            (true, false, _) => {
                self.store.move_deliveries(id, DeliveryStatus::Pending, DeliveryStatus::Paused, now).await?;
            }
            _ => {}
        }
        Ok(EndpointView::from(&e))
    }

    pub async fn delete_endpoint(&self, actor: &Actor, id: EndpointId) -> ServiceResult<()> {
        self.own_endpoint(actor, id).await?;
        self.store.delete_endpoint(id).await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first, and the cursor of the next page.
    pub async fn deliveries(
        &self,
        actor: &Actor,
        id: EndpointId,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> ServiceResult<(Vec<DeliveryView>, Option<String>)> {
        self.own_endpoint(actor, id).await?;
        let limit = limit.unwrap_or(50).clamp(1, 200);
        let before = cursor.map(parse_cursor).transpose()?;
        let page = self.store.list_deliveries(id, before, limit + 1).await?;
        let next = (page.len() > limit).then(|| cursor_of(&page[limit - 1]));
        Ok((page.iter().take(limit).map(DeliveryView::from).collect(), next))
    }

    /// Sends a delivery again now (same event id and body), whatever its status.
    pub async fn redeliver(&self, actor: &Actor, id: EndpointId, delivery: &str) -> ServiceResult<DeliveryView> {
        let e = self.own_endpoint(actor, id).await?;
        let not_found = || ServiceError::NotFound("delivery not found".into());
        let d = self.store.get_delivery(delivery).await?.ok_or_else(not_found)?;
        if d.target != omnibiz_domain::webhook::Target::Webhook(e.id) {
            return Err(not_found());
        }
        if !e.enabled {
            return Err(ServiceError::Invalid("the endpoint is disabled: enable it first".into()));
        }
        self.store.redeliver(delivery, Utc::now()).await?;
        let d = self.store.get_delivery(delivery).await?.ok_or_else(not_found)?;
        Ok(DeliveryView::from(&d))
    }
}
