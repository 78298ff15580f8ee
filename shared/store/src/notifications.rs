//! Push subscriptions and notification preferences (see
//! `omnibiz_service::notify`). Notifications themselves travel as
//! deliveries of the webhook outbox ([`crate::WebhookStore`]), with a
//! push or email [`omnibiz_domain::webhook::Target`].

use std::collections::HashMap;

use async_trait::async_trait;
use omnibiz_domain::notification::{Preferences, PushSubscription};
use omnibiz_domain::{Party, SubscriptionId};

use crate::StoreResult;

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores a subscription. One browser endpoint belongs to one person:
    /// saving an endpoint again replaces the earlier subscription (its id
    /// is kept when the person is the same; another person's is removed —
    /// the browser now belongs to whoever subscribed last). Returns what is stored.
    async fn save_subscription(&self, s: &PushSubscription) -> StoreResult<PushSubscription>;
    /// A person's subscriptions, oldest first.
    async fn subscriptions_of(&self, party: Party) -> StoreResult<Vec<PushSubscription>>;
    /// The subscriptions of each of `parties` (each person's oldest first;
    /// someone with none is absent). A store where a read is a round trip
    /// answers in one: the notifier reads a whole outbox pass's recipients.
    async fn subscriptions_of_many(&self, parties: &[Party]) -> StoreResult<HashMap<Party, Vec<PushSubscription>>> {
        let mut out = HashMap::new();
        for p in parties {
            let subs = self.subscriptions_of(*p).await?;
            if !subs.is_empty() {
                out.insert(*p, subs);
            }
        }
        Ok(out)
    }
    async fn get_subscription(&self, id: SubscriptionId) -> StoreResult<Option<PushSubscription>>;
    /// Removes a subscription — only `party`'s, when given; false when there was none.
    async fn delete_subscription(&self, id: SubscriptionId, party: Option<Party>) -> StoreResult<bool>;

    /// A person's preferences; the defaults when they never set any.
    async fn preferences(&self, party: Party) -> StoreResult<Preferences>;
    async fn set_preferences(&self, party: Party, p: &Preferences) -> StoreResult<()>;
}
