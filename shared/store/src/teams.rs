//! Teams: who acts for a business besides its owner, and the business's
//! team rules. A user belongs to at most one business's team.

use async_trait::async_trait;
use omnibiz_domain::{TeamMember, TeamSettings, UserId};

use crate::StoreResult;

/// What adding a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new member.
    Added,
    /// Already a member of this business: the role is now the given one.
    Updated,
    /// The user is a member of another business's team: nothing changed.
    OtherTeam,
}

#[async_trait]
pub trait TeamStore: Send + Sync + 'static {
    /// Adds `member` to its business's team, or changes its role there.
    async fn add_team_member(&self, member: &TeamMember) -> StoreResult<Joined>;
    /// Removes `user` from `business`'s team; false when not a member of it.
    async fn remove_team_member(&self, business: UserId, user: UserId) -> StoreResult<bool>;
    /// The business's members, oldest first.
    async fn team_members(&self, business: UserId) -> StoreResult<Vec<TeamMember>>;
    /// The team `user` is a member of, if any.
    async fn membership(&self, user: UserId) -> StoreResult<Option<TeamMember>>;
    /// The business's team rules (the defaults when never set).
    async fn team_settings(&self, business: UserId) -> StoreResult<TeamSettings>;
    async fn set_team_settings(&self, business: UserId, settings: TeamSettings) -> StoreResult<()>;
}
