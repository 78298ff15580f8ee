//! Each conversation's business owner and customer, read once per process
//! and kept: they never change, and every send and every webhook fan-out
//! needs them. One cache per process, shared by the messaging service and
//! the webhook worker.

use moka::sync::Cache;
use omnibiz_domain::{Conversation, ConversationId, CustomerId, UserId};

use crate::{ConversationStore, StoreResult};

/// Most conversations kept (≈ 100–200 bytes an entry).
const CAPACITY: u64 = 100_000;

/// A bounded cache of conversations' two participants, or none at all
/// ([`PartiesCache::disabled`]: every lookup reads the store).
pub struct PartiesCache {
    cache: Option<Cache<ConversationId, (UserId, CustomerId)>>,
}

impl Default for PartiesCache {
    fn default() -> Self {
        Self { cache: Some(Cache::new(CAPACITY)) }
    }
}

impl PartiesCache {
    /// Keeps nothing (a gateway: its rooms know their participants).
    pub fn disabled() -> Self {
        Self { cache: None }
    }

    /// Records the participants of a conversation just read.
    pub fn remember(&self, conv: &Conversation) {
        if let Some(cache) = &self.cache {
            cache.insert(conv.id, (conv.business_owner_id, conv.customer_id));
        }
    }

    /// The conversation's owner and customer, from the cache or else read
    /// (and kept); `None` when the conversation does not exist.
    pub async fn get(
        &self,
        store: &dyn ConversationStore,
        id: ConversationId,
    ) -> StoreResult<Option<(UserId, CustomerId)>> {
        if let Some(p) = self.cache.as_ref().and_then(|c| c.get(&id)) {
            return Ok(Some(p));
        }
        let conv = store.get_conversation(id).await?;
        if let Some(c) = &conv {
            self.remember(c);
        }
        Ok(conv.map(|c| (c.business_owner_id, c.customer_id)))
    }
}
