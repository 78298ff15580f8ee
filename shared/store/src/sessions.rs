//! Session revocations: "every session of this principal that began before
//! this time is over". A connection or token refresh checks it, so a
//! revoked principal cannot simply reconnect with the token it had.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::Party;

use crate::StoreResult;

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Records that `party`'s sessions begun before `at` are revoked (a later
    /// revocation moves the time forward, never back).
    async fn revoke_sessions(&self, party: Party, at: DateTime<Utc>) -> StoreResult<()>;
    /// When `party`'s sessions were last revoked, if ever.
    async fn sessions_revoked_at(&self, party: Party) -> StoreResult<Option<DateTime<Utc>>>;
}
