//! Shared by the hub tests and the criterion benches (`#[path]`-included):
//! an embedded store with one business owner, one customer and their
//! conversation, built by the workspace's one fixture builder
//! (`omnibiz_store::fixtures`).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use omnibiz_domain::{Conversation, Customer, User};
use omnibiz_store::fixtures;
use omnibiz_store::sqlite::SqliteStore;

pub struct Pair {
    pub store: Arc<SqliteStore>,
    pub owner: User,
    pub customer: Customer,
    pub conversation: Conversation,
}

pub async fn owner_customer_conversation() -> Pair {
    let store = Arc::new(SqliteStore::in_memory().expect("sqlite"));
    let owner = User { email: "o@x.example".into(), phone: None, business_name: None, ..fixtures::owner("Owner") };
    let customer = Customer { email: "c@x.example".into(), ..fixtures::customer(owner.id, "Customer") };
    fixtures::insert_business(&*store, &owner, std::slice::from_ref(&customer)).await.expect("business");
    let conversation = fixtures::conversation(&*store, &owner, &customer).await.expect("conv");
    Pair { store, owner, customer, conversation }
}
