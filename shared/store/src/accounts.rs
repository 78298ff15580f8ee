//! Business owners (`users`) and their customers: read by the service; written by `seed` and tests (the main app owns them in production).

use std::collections::HashSet;

use async_trait::async_trait;
use omnibiz_domain::{Customer, CustomerId, Party, User, UserId};

use crate::{CustomerQuery, StoreResult};

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()>;
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// The users whose email is `email` (ignoring case and surrounding
    /// spaces), at most `limit` of them.
    async fn users_by_email(&self, email: &str, limit: usize) -> StoreResult<Vec<UserId>>;
    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>>;
    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>>;
    async fn list_customers(&self, query: &CustomerQuery) -> StoreResult<Vec<Customer>>;
    /// Which of these accounts still exist (ids only: cheap for a batch of
    /// connected principals a gateway re-checks).
    async fn existing_accounts(&self, parties: &[Party]) -> StoreResult<HashSet<Party>>;
}
