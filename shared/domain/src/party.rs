//! Who takes part in a conversation: a [`Party`] by id, a [`Side`], per-side counters.

use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, UserId};

/// One participant of a conversation: an owner or a customer, by id. Names
/// the principal's personal room and bus topic (`user:<id>` /
/// `customer:<id>`) in 13 bytes, without a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Owner(UserId),
    Customer(CustomerId),
}

impl Party {
    /// The participant on `side` with this id.
    pub fn of(side: Side, id: ObjectId) -> Self {
        match side {
            Side::Owner => Self::Owner(UserId(id)),
            Side::Customer => Self::Customer(CustomerId(id)),
        }
    }

    pub fn oid(self) -> ObjectId {
        match self {
            Self::Owner(id) => id.oid(),
            Self::Customer(id) => id.oid(),
        }
    }

    pub fn side(self) -> Side {
        match self {
            Self::Owner(_) => Side::Owner,
            Self::Customer(_) => Side::Customer,
        }
    }

    /// The personal room's name, `user:<id>` or `customer:<id>`.
    pub fn room(self) -> String {
        match self {
            Self::Owner(id) => format!("user:{id}"),
            Self::Customer(id) => format!("customer:{id}"),
        }
    }

    /// Parses a personal room's name (the inverse of [`Party::room`]).
    pub fn from_room(room: &str) -> Option<Self> {
        if let Some(id) = room.strip_prefix("user:") {
            return id.parse().ok().map(Self::Owner);
        }
        room.strip_prefix("customer:")?.parse().ok().map(Self::Customer)
    }
}

/// Which side of a conversation someone is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The business owner.
    Owner,
    Customer,
}

impl Side {
    pub fn other(self) -> Self {
        match self {
            Self::Owner => Self::Customer,
            Self::Customer => Self::Owner,
        }
    }
    /// The `senderRole` value of messages sent from this side.
    pub fn role_name(self) -> &'static str {
        match self {
            Self::Owner => "business_owner",
            Self::Customer => "customer",
        }
    }
    /// The seed's `senderModel` (the Mongoose model the sender id refers to).
    pub fn model_name(self) -> &'static str {
        match self {
            Self::Owner => "User",
            Self::Customer => "Customer",
        }
    }
    pub fn from_model_name(s: &str) -> Option<Self> {
        match s {
            "User" => Some(Self::Owner),
            "Customer" => Some(Self::Customer),
            _ => None,
        }
    }
    /// `admin` is a `users` account, so on the business side.
    pub fn from_role_name(s: &str) -> Option<Self> {
        match s {
            "business_owner" | "admin" => Some(Self::Owner),
            "customer" => Some(Self::Customer),
            _ => None,
        }
    }
}

/// A pair of per-side counters (unread messages, read positions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerSide {
    pub owner: i64,
    pub customer: i64,
}

impl PerSide {
    pub fn get(&self, side: Side) -> i64 {
        match side {
            Side::Owner => self.owner,
            Side::Customer => self.customer,
        }
    }
}
