//! The access policy, in one place.
//!
//! - Only the two participants see a conversation and its messages.
//! - A business owner talks only to customers whose `invitedBy` is them.
//! - A customer talks only to the business owner in their `invitedBy`.
//! - `/customers` is for users (business owners) only.
//! - Admins get no extra rights here: an admin user is treated like a business
//!   owner, i.e. sees only conversations with customers they invited. Support
//!   tooling that needs more reads MongoDB directly.
//!
//! "Not visible" is answered as not found, so ids of other tenants leak nothing.

use omnibiz_domain::{Conversation, Customer, CustomerId, Side, UserId};

use super::Principal;

/// What a principal may do with a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A participant, on this side.
    Participant(Side),
    /// Not a participant: treat the conversation as nonexistent.
    Hidden,
}

impl Access {
    pub fn of(principal: &Principal, conv: &Conversation) -> Self {
        Self::between(principal, conv.business_owner_id, conv.customer_id)
    }

    /// The same decision from a conversation's two participants alone.
    pub fn between(principal: &Principal, owner: UserId, customer: CustomerId) -> Self {
        match principal {
            Principal::User { id, .. } if *id == owner => Self::Participant(Side::Owner),
            Principal::Customer { id } if *id == customer => Self::Participant(Side::Customer),
            _ => Self::Hidden,
        }
    }
}

/// Whether a user principal may start or hold a conversation with `customer`.
pub fn can_reach_customer(principal: &Principal, customer: &Customer) -> bool {
    match principal {
        Principal::User { id, .. } => customer.invited_by == *id,
        Principal::Customer { id } => customer.id == *id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use omnibiz_domain::UserRole;

    #[test]
    fn only_participants_see_a_conversation() {
        let owner = UserId::new();
        let customer = CustomerId::new();
        let conv = Conversation::new(owner, customer, Utc::now());
        let as_owner = Principal::User { id: owner, role: UserRole::BusinessOwner };
        let as_customer = Principal::Customer { id: customer };
        let stranger = Principal::User { id: UserId::new(), role: UserRole::Admin };
        let other_customer = Principal::Customer { id: CustomerId::new() };
        assert_eq!(Access::of(&as_owner, &conv), Access::Participant(Side::Owner));
        assert_eq!(Access::of(&as_customer, &conv), Access::Participant(Side::Customer));
        assert_eq!(Access::of(&stranger, &conv), Access::Hidden);
        assert_eq!(Access::of(&other_customer, &conv), Access::Hidden);
    }
}
