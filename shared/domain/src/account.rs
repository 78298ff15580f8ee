//! Accounts: business owners (the `users` collection) and their customers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, UserId};

/// The role of a `users` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    BusinessOwner,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BusinessOwner => "business_owner",
            Self::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("admin") { Self::Admin } else { Self::BusinessOwner }
    }
}

/// A business owner (or admin). Owned by the main OmniBiz app; `seed` writes demo ones.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: UserRole,
    pub business_name: Option<String>,
}

/// A customer, invited by exactly one business owner, with order statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub invited_by: UserId,
    pub total_orders: i64,
    pub total_spent: f64,
    pub last_order_date: Option<DateTime<Utc>>,
    /// When the customer last signed in to the storefront (the main app writes it).
    pub last_login: Option<DateTime<Utc>>,
    /// When the customer joined (`joinedDate` in the seed's JSON).
    pub created_at: DateTime<Utc>,
}
