//! A business's team: the people who answer its customers besides the owner.
//!
//! The business is its owner's `users` record (`businessOwnerId` on every
//! conversation stays the owner); a team member is another `users` record
//! that acts for that business, with a [`TeamRole`]. A user belongs to at
//! most one business's team.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// What a team member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    /// Sees the conversations assigned to them and the unassigned ones (or
    /// all, when the business says so); assigns only to themselves.
    Agent,
    /// Sees every conversation of the business, manages the team and assigns.
    Admin,
}

str_enum!(TeamRole { Agent => "agent", Admin => "admin" });

/// One member of a business's team.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamMember {
    /// The business: its owner's user id.
    pub business: UserId,
    pub user: UserId,
    pub role: TeamRole,
    pub added_at: DateTime<Utc>,
}

/// A business's team rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamSettings {
    /// Agents see every conversation of the business, not only theirs and
    /// the unassigned ones (default false).
    #[serde(default)]
    pub agents_see_all: bool,
    /// A customer's message in an unassigned conversation assigns it to an
    /// online agent: the one with the fewest open conversations, in turn
    /// among equals (default false).
    #[serde(default)]
    pub auto_assign: bool,
    /// Automatic assignment gives an agent at most this many open
    /// conversations (1–1000, default 20); past it, conversations wait unassigned.
    #[serde(default = "default_max_open", deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_open_per_agent: u32,
}

fn default_max_open() -> u32 {
    20
}

/// A count JSON may spell `5` or `5.0` (out of range: 0, which `validate` refuses).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(u32::try_from(crate::message::integral_size(d)?).unwrap_or(0))
}

impl Default for TeamSettings {
    fn default() -> Self {
        Self { agents_see_all: false, auto_assign: false, max_open_per_agent: default_max_open() }
    }
}

impl TeamSettings {
    /// Checks the bounds a schema states but serde does not.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.max_open_per_agent) {
            return Err("maxOpenPerAgent: 1 to 1000".into());
        }
        Ok(())
    }
}

/// Most members one business's team may have (the owner not counted).
pub const MAX_TEAM_MEMBERS: usize = 200;

/// Someone acting for a business: the owner, or a team member with a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub business: UserId,
    /// `None` for the owner.
    pub role: Option<TeamRole>,
    /// The business's [`TeamSettings::agents_see_all`].
    pub agents_see_all: bool,
}

impl Seat {
    /// The owner of `business` (or someone with no team: a business of one).
    pub fn owner(business: UserId) -> Self {
        Self { business, role: None, agents_see_all: false }
    }

    /// Whether this seat manages the team and assigns anyone: the owner or an admin.
    pub fn manages(&self) -> bool {
        self.role != Some(TeamRole::Agent)
    }

    /// Whether this seat sees every conversation of its business.
    pub fn sees_all(&self) -> bool {
        self.manages() || self.agents_see_all
    }

    /// Whether a conversation of this business assigned to `assignee` is
    /// visible to `me` in this seat: owners and admins see all, agents theirs
    /// and the unassigned ones (all, when the business says so).
    pub fn sees(&self, me: UserId, assignee: Option<UserId>) -> bool {
        self.sees_all() || assignee.is_none_or(|a| a == me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_take_a_count_written_as_a_whole_float() {
        let r: TeamSettings = serde_json::from_str(r#"{"maxOpenPerAgent": 155.0}"#).expect("155.0 is 155");
        assert_eq!(r.max_open_per_agent, 155);
        assert!(serde_json::from_str::<TeamSettings>(r#"{"maxOpenPerAgent": 1.5}"#).is_err());
        let huge: TeamSettings = serde_json::from_str(r#"{"maxOpenPerAgent": 1e12}"#).expect("parsed");
        assert!(huge.validate().is_err());
        assert_eq!(serde_json::from_str::<TeamSettings>("{}").expect("defaults"), TeamSettings::default());
    }

    #[test]
    fn agents_see_theirs_and_the_unassigned() {
        let (biz, me, other) = (UserId::new(), UserId::new(), UserId::new());
        let agent = Seat { business: biz, role: Some(TeamRole::Agent), agents_see_all: false };
        assert!(agent.sees(me, None));
        assert!(agent.sees(me, Some(me)));
        assert!(!agent.sees(me, Some(other)));
        assert!(Seat { agents_see_all: true, ..agent }.sees(me, Some(other)));
        let admin = Seat { role: Some(TeamRole::Admin), ..agent };
        assert!(admin.sees(me, Some(other)) && admin.manages());
        assert!(Seat::owner(biz).sees(biz, Some(other)) && Seat::owner(biz).manages());
        assert!(!agent.manages());
    }
}
