//! The access policy, in one place.
//!
//! - A conversation is seen by its customer and by its business: the owner,
//!   and the business's team by role ([`Seat::sees`]): admins all of it,
//!   agents the conversations assigned to them and the unassigned ones
//!   (all, when the business says so).
//! - A business talks only to customers whose `invitedBy` is it.
//! - A customer talks only to the business in their `invitedBy`.
//! - `/customers` is for users (the business side) only.
//! - A token's `role: admin` grants nothing by itself: what a user may do
//!   comes from the team they are in (or the business they own).
//!
//! "Not visible" is answered as not found, so ids of other tenants leak nothing.

use omnibiz_domain::{Conversation, Customer, CustomerId, Seat, Side, UserId};

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
    /// `seat`: the business a user acts for (see `Actor::seat`).
    pub fn of(principal: &Principal, seat: Option<Seat>, conv: &Conversation) -> Self {
        match principal {
            Principal::User { id, .. } => match seat {
                Some(s) if s.business == conv.business_owner_id && s.sees(*id, conv.assignee) => {
                    Self::Participant(Side::Owner)
                }
                _ => Self::Hidden,
            },
            Principal::Customer { id } if conv.has_customer(*id) => Self::Participant(Side::Customer),
            Principal::Customer { .. } => Self::Hidden,
        }
    }

    /// The same decision from a conversation's two participants alone, for
    /// seats that see every conversation of their business (`None` for an
    /// agent who sees only some: their answer needs the assignee).
    pub fn between(principal: &Principal, seat: Option<Seat>, owner: UserId, customer: CustomerId) -> Option<Self> {
        Some(match principal {
            Principal::User { .. } => match seat {
                Some(s) if s.business == owner && s.sees_all() => Self::Participant(Side::Owner),
                Some(s) if s.business == owner => return None,
                _ => Self::Hidden,
            },
            Principal::Customer { id } if *id == customer => Self::Participant(Side::Customer),
            Principal::Customer { .. } => Self::Hidden,
        })
    }
}

/// Whether someone acting for `business` (a customer: themselves) may start
/// or hold a conversation with `customer`.
pub fn can_reach_customer(principal: &Principal, business: Option<UserId>, customer: &Customer) -> bool {
    match principal {
        Principal::User { .. } => business.is_some_and(|b| customer.invited_by == b),
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
        let stranger_id = UserId::new();
        let stranger = Principal::User { id: stranger_id, role: UserRole::Admin };
        let other_customer = Principal::Customer { id: CustomerId::new() };
        assert_eq!(Access::of(&as_owner, Some(Seat::owner(owner)), &conv), Access::Participant(Side::Owner));
        assert_eq!(Access::of(&as_customer, None, &conv), Access::Participant(Side::Customer));
        assert_eq!(Access::of(&stranger, Some(Seat::owner(stranger_id)), &conv), Access::Hidden);
        assert_eq!(Access::of(&other_customer, None, &conv), Access::Hidden);
    }

    #[test]
    fn a_team_sees_by_role_and_assignment() {
        use omnibiz_domain::TeamRole;
        let (owner, agent, other) = (UserId::new(), UserId::new(), UserId::new());
        let mut conv = Conversation::new(owner, CustomerId::new(), Utc::now());
        let p = Principal::User { id: agent, role: UserRole::BusinessOwner };
        let seat = Seat { business: owner, role: Some(TeamRole::Agent), agents_see_all: false };
        assert_eq!(Access::of(&p, Some(seat), &conv), Access::Participant(Side::Owner), "unassigned");
        conv.assignee = Some(other);
        assert_eq!(Access::of(&p, Some(seat), &conv), Access::Hidden, "another agent's");
        assert_eq!(Access::between(&p, Some(seat), owner, conv.customer_id), None, "needs the assignee");
        let all = Seat { agents_see_all: true, ..seat };
        assert_eq!(Access::of(&p, Some(all), &conv), Access::Participant(Side::Owner));
        let admin = Seat { role: Some(TeamRole::Admin), ..seat };
        assert_eq!(Access::between(&p, Some(admin), owner, conv.customer_id), Some(Access::Participant(Side::Owner)));
        let elsewhere = Seat { business: UserId::new(), ..admin };
        assert_eq!(Access::of(&p, Some(elsewhere), &conv), Access::Hidden, "another business's admin");
    }
}
