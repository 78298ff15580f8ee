//! Shared by the hub tests and the criterion benches (`#[path]`-included):
//! an embedded store with one business owner, one customer and their
//! conversation.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use chrono::Utc;
use omnibiz_shared::domain::{Conversation, Customer, CustomerId, User, UserId, UserRole};
use omnibiz_shared::store::sqlite::SqliteStore;
use omnibiz_shared::store::{Participants, Store};

pub struct Pair {
    pub store: Arc<SqliteStore>,
    pub owner: User,
    pub customer: Customer,
    pub conversation: Conversation,
}

pub async fn owner_customer_conversation() -> Pair {
    let store = Arc::new(SqliteStore::in_memory().expect("sqlite"));
    let owner = User {
        id: UserId::new(),
        name: "Owner".into(),
        email: "o@x.example".into(),
        phone: None,
        role: UserRole::BusinessOwner,
        business_name: None,
    };
    store.insert_user(&owner).await.expect("user");
    let customer = Customer {
        id: CustomerId::new(),
        name: "Customer".into(),
        email: "c@x.example".into(),
        phone: None,
        invited_by: owner.id,
        total_orders: 0,
        total_spent: 0.0,
        last_order_date: None,
        last_login: None,
        created_at: Utc::now(),
    };
    store.insert_customers(std::slice::from_ref(&customer)).await.expect("customer");
    let (conversation, _) =
        store.get_or_create_conversation(&Participants::of(&owner, &customer), Utc::now()).await.expect("conv");
    Pair { store, owner, customer, conversation }
}
