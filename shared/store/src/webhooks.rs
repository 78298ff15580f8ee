//! Webhook endpoints, the outbox and deliveries (see `omnibiz_service::webhooks`). `append_message`, a created `get_or_create_conversation`, `update_conversation`, an advancing `mark_read`, an edit and a delete record their outbox event atomically with the change; event ids and bodies come from `omnibiz_domain::events`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, Endpoint, OutboxEvent};
use omnibiz_domain::{EndpointId, UserId};

use crate::StoreResult;

/// How many deliveries of each owner one claim may take: up to
/// `per_owner` in flight per owner, counting the `held` ones the claimer
/// is still sending.
#[derive(Debug, Clone, Default)]
pub struct OwnerShare {
    pub per_owner: usize,
    pub held: HashMap<UserId, usize>,
}

impl OwnerShare {
    /// No per-owner bound.
    pub fn unlimited() -> Self {
        Self { per_owner: usize::MAX, held: HashMap::new() }
    }

    /// How many more of `owner`'s deliveries may be taken, given `taken` already in this claim.
    pub fn room(&self, owner: UserId, taken: usize) -> usize {
        self.per_owner.saturating_sub(self.held.get(&owner).copied().unwrap_or(0)).saturating_sub(taken)
    }
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()>;
    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>>;
    /// The endpoints of each of `owners` (each by id; an owner with none is
    /// absent). A store where a read is a round trip answers in one: the
    /// worker reads a whole outbox pass's businesses.
    async fn endpoints_of_many(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, Vec<Endpoint>>> {
        let mut out = HashMap::new();
        for o in owners {
            let eps = self.list_endpoints(*o).await?;
            if !eps.is_empty() {
                out.insert(*o, eps);
            }
        }
        Ok(out)
    }
    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>>;
    /// Saves everything but the id, owner, secret and creation time; false when it is gone.
    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool>;
    /// Replaces an endpoint's stored secret (resealing it); false when it is gone.
    async fn set_endpoint_secret(&self, id: EndpointId, secret: &str) -> StoreResult<bool>;
    /// Every endpoint's id and stored secret (for resealing them all).
    async fn endpoint_secrets(&self) -> StoreResult<Vec<(EndpointId, String)>>;
    /// Deletes the endpoint and its deliveries.
    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool>;
    /// Counts a failed attempt (`ok` false) or resets the streak; the streak after the call.
    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64>;
    /// Disables an enabled endpoint with a reason and pauses its pending
    /// deliveries; false when it was not enabled (another pod did it first).
    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Outbox events not fanned out yet, oldest first.
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    /// Stores the deliveries (ids already present are left alone) and marks the event done.
    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()>;
    /// [`WebhookStore::fan_out`] for a whole pass of events; a store may do it in fewer round trips.
    async fn fan_out_all(&self, batch: &[(OutboxEvent, Vec<Delivery>)]) -> StoreResult<()> {
        for (event, deliveries) in batch {
            self.fan_out(event, deliveries).await?;
        }
        Ok(())
    }
    /// Leases up to `limit` pending deliveries due by `now` whose lease (if
    /// any) expired — one holder at a time — the earliest due first, but no
    /// more of one owner's than `share` leaves room for: an owner with a
    /// backlog (or slow receivers) cannot take every slot.
    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        share: &OwnerShare,
    ) -> StoreResult<Vec<Delivery>>;
    /// Writes an attempt's outcome (status, next time, log, attempt count)
    /// and releases the lease — only while `holder` still holds it.
    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// An endpoint's deliveries, newest first, after the `(created_at, id)` cursor.
    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;
    /// Makes a delivery pending again, due now, without its unread condition.
    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Moves an endpoint's deliveries from one status to another (pause, resume).
    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
