//! Test and demo data: the one builder of owners, customers, conversations
//! and messages shared by the store contract suite, the gateway's tests and
//! benches, the end-to-end tests and `omnibiz seed`.
//!
//! Builders return plain values with sensible defaults; a caller that needs
//! a particular field overrides it with struct update syntax
//! (`User { business_name: None, ..fixtures::owner("Ada") }`). The async
//! helpers write through any [`Store`].

use chrono::{DateTime, Utc};
use omnibiz_domain::{Conversation, ConversationId, Customer, CustomerId, Side, User, UserId, UserRole};

use crate::prelude::*;
use crate::{NewMessage, Participants, StoreResult};

/// Lower-case words joined by dots: `"Ada Owner"` → `"ada.owner"`.
fn slug(name: &str) -> String {
    name.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(".")
}

/// A business owner named `name` (`<slug>@biz.example`, business `<name> Ltd`).
pub fn owner(name: &str) -> User {
    User {
        id: UserId::new(),
        name: name.into(),
        email: format!("{}@biz.example", slug(name)),
        phone: Some("+1 555 0100".into()),
        role: UserRole::BusinessOwner,
        business_name: Some(format!("{name} Ltd")),
    }
}

/// A customer of `owner` named `name` (`<slug>@mail.example`, no orders yet).
pub fn customer(owner: UserId, name: &str) -> Customer {
    Customer {
        id: CustomerId::new(),
        name: name.into(),
        email: format!("{}@mail.example", slug(name)),
        phone: None,
        invited_by: owner,
        total_orders: 0,
        total_spent: 0.0,
        last_order_date: None,
        last_login: None,
        created_at: Utc::now(),
    }
}

/// A text message from `side` (sender id `sender`) to append now.
pub fn message(conversation: ConversationId, side: Side, sender: &str, text: &str) -> NewMessage {
    message_at(conversation, side, sender, text, Utc::now())
}

/// [`message`] at a given time.
pub fn message_at(conversation: ConversationId, side: Side, sender: &str, text: &str, at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        conversation_id: conversation,
        sender_id: sender.into(),
        sender_side: side,
        sender_name: "someone".into(),
        content: text.into(),
        attachments: Vec::new(),
        client_message_id: None,
        created_at: at,
        reply_to: None,
        acting_for: None,
        team_role: None,
        private: false,
        system: false,
    }
}

/// An internal note by `member` of `business`'s team (an agent) to append now.
pub fn note(conversation: ConversationId, business: UserId, member: UserId, text: &str) -> NewMessage {
    NewMessage {
        acting_for: Some(business),
        team_role: Some(omnibiz_domain::TeamRole::Agent),
        private: true,
        ..message(conversation, Side::Owner, &member.to_hex(), text)
    }
}

/// Writes an owner and their customers.
pub async fn insert_business(store: &dyn Store, owner: &User, customers: &[Customer]) -> StoreResult<()> {
    store.insert_user(owner).await?;
    for chunk in customers.chunks(1000) {
        store.insert_customers(chunk).await?;
    }
    Ok(())
}

/// The conversation between `owner` and `customer` (created when missing).
pub async fn conversation(store: &dyn Store, owner: &User, customer: &Customer) -> StoreResult<Conversation> {
    Ok(store.get_or_create_conversation(&Participants::of(owner, customer), Utc::now()).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_business_and_its_conversation_are_stored() {
        let store = crate::sqlite::SqliteStore::in_memory().expect("sqlite");
        let o = owner("Ada Owner");
        assert_eq!(o.email, "ada.owner@biz.example");
        let cs = [customer(o.id, "Carl"), customer(o.id, "Dora Day")];
        assert_eq!(cs[1].email, "dora.day@mail.example");
        insert_business(&store, &o, &cs).await.expect("insert");
        let conv = conversation(&store, &o, &cs[0]).await.expect("conversation");
        assert_eq!(conversation(&store, &o, &cs[0]).await.expect("again").id, conv.id, "create-or-get");
        let sent = store.append_message(message(conv.id, Side::Customer, &cs[0].id.to_hex(), "hi")).await;
        assert_eq!(sent.expect("append").expect("participant").message().seq, 1);
    }
}
