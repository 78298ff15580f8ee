//! Teams: members of a business who answer its customers, and assigning
//! conversations to them.
//!
//! The owner and the team's admins manage the team (add, change a role,
//! remove, the business's rules) and assign conversations to anyone in it;
//! an agent may take an unassigned conversation or let go of their own.
//! Removing a member ends their sessions on every pod (as revoking does),
//! and their conversations become unassigned.

use chrono::Utc;
use omnibiz_domain::views::iso;
use omnibiz_domain::{ConversationId, Party, Seat, Side, TeamMember, TeamRole, TeamSettings, UserId};
use omnibiz_store::{Assigned, ConversationQuery, Joined};
use serde::Serialize;
use serde_json::json;
use tracing::instrument;

use super::conversations::not_found_conversation;
use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::auth::Principal;
use crate::bus::{EventKind, Topic};

/// One person of a business's team, as the team sees them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub email: String,
    /// `owner`, `admin` or `agent`.
    pub role: &'static str,
    /// When they joined the team (absent for the owner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_at: Option<String>,
    pub is_online: bool,
}

/// A business's team: the owner first, then the members by joining order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamView {
    /// The business (its owner's user id).
    pub business_id: String,
    pub members: Vec<MemberView>,
    pub settings: TeamSettings,
}

impl Messaging {
    fn seat_of(actor: &Actor) -> ServiceResult<Seat> {
        actor.seat.ok_or_else(|| ServiceError::Forbidden("only a business's team has a team".into()))
    }

    /// The caller's team (anyone in it may read it).
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn team(&self, actor: &Actor) -> ServiceResult<TeamView> {
        let business = Self::seat_of(actor)?.business;
        let (members, settings) = tokio::join!(self.store.team_members(business), self.store.team_settings(business));
        let (members, settings) = (members?, settings?);
        let mut out = Vec::with_capacity(members.len() + 1);
        let owner = self.store.get_user(business).await?;
        let mut rooms = vec![Party::Owner(business).room()];
        if let Some(o) = owner {
            out.push(MemberView {
                user_id: o.id.to_hex(),
                name: o.name,
                email: o.email,
                role: "owner",
                added_at: None,
                is_online: false,
            });
        }
        for m in &members {
            // A member whose account the main app deleted is left out.
            if let Some(u) = self.store.get_user(m.user).await? {
                rooms.push(Party::Owner(u.id).room());
                out.push(MemberView {
                    user_id: u.id.to_hex(),
                    name: u.name,
                    email: u.email,
                    role: m.role.as_str(),
                    added_at: Some(iso(m.added_at)),
                    is_online: false,
                });
            }
        }
        let online = self.presence.online(&rooms).await;
        for (v, on) in out.iter_mut().zip(online) {
            v.is_online = on;
        }
        Ok(TeamView { business_id: business.to_hex(), members: out, settings })
    }

    /// Adds a user (an account of the main app) to the caller's team with
    /// `role`, or changes the role of one already in it. True when added.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), member = %user))]
    pub async fn add_member(&self, actor: &Actor, user: UserId, role: TeamRole) -> ServiceResult<bool> {
        let business = actor.managed_business()?;
        if user == business {
            return Err(ServiceError::Invalid("userId: the owner leads the team already".into()));
        }
        if self.store.get_user(user).await?.is_none() {
            return Err(ServiceError::NotFound("no user with this id".into()));
        }
        let members = self.store.team_members(business).await?;
        let known = members.iter().any(|m| m.user == user);
        if !known && members.len() >= omnibiz_domain::MAX_TEAM_MEMBERS {
            return Err(ServiceError::Conflict(format!(
                "a team has at most {} members",
                omnibiz_domain::MAX_TEAM_MEMBERS
            )));
        }
        let member = TeamMember { business, user, role, added_at: Utc::now() };
        let added = match self.store.add_team_member(&member).await? {
            Joined::Added => true,
            Joined::Updated => false,
            Joined::OtherTeam => {
                return Err(ServiceError::Conflict("this user is in another business's team".into()));
            }
        };
        self.forget_account(Party::Owner(user));
        self.has_team.invalidate(&business);
        let change = if added { "added" } else { "updated" };
        self.tell_team(business, json!({"change": change, "userId": user.to_hex(), "role": role.as_str()})).await;
        Ok(added)
    }

    /// The user a manager of a team means by `email` (to add them): 404 when
    /// no account has it, 409 when several do (then by id).
    pub async fn user_by_email(&self, actor: &Actor, email: &str) -> ServiceResult<UserId> {
        actor.managed_business()?;
        let email = email.trim();
        if email.is_empty() || email.len() > 254 || !email.contains('@') {
            return Err(ServiceError::Invalid("email: an email address".into()));
        }
        match self.store.users_by_email(email, 2).await?.as_slice() {
            [one] => Ok(*one),
            [] => Err(ServiceError::NotFound("no user with this email".into())),
            _ => Err(ServiceError::Conflict("several accounts have this email: add the member by userId".into())),
        }
    }

    /// Removes a member: their sessions end everywhere now, their
    /// conversations become unassigned.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), member = %user))]
    pub async fn remove_member(&self, actor: &Actor, user: UserId) -> ServiceResult<()> {
        let business = actor.managed_business()?;
        if !self.store.remove_team_member(business, user).await? {
            return Err(ServiceError::NotFound("no such member of this team".into()));
        }
        let gone = Party::Owner(user);
        let at = Utc::now();
        self.store.revoke_sessions(gone, at).await?;
        self.forget_account(gone);
        self.has_team.invalidate(&business);
        self.store.forget_team_reads(user).await?;
        let payload = json!({"reason": "revoked", "revokedAt": iso(at)});
        self.publish(Topic::Principal(gone), EventKind::SessionRevoked, None, payload, None).await;
        loop {
            let q = ConversationQuery {
                party: Party::Owner(business),
                customers: None,
                before: None,
                archived: None,
                assigned: Assigned::To(user),
                limit: 200,
            };
            let theirs = self.store.list_conversations(&q).await?;
            for c in &theirs {
                self.store.set_assignee(c.id, None, Utc::now()).await?;
                self.tell_assignment(business, c.id, None, Some(user), Some(actor)).await;
            }
            if theirs.len() < 200 {
                break;
            }
        }
        self.tell_team(business, json!({"change": "removed", "userId": user.to_hex()})).await;
        Ok(())
    }

    /// The business's team rules.
    pub async fn set_team_settings(&self, actor: &Actor, settings: TeamSettings) -> ServiceResult<TeamSettings> {
        let business = actor.managed_business()?;
        settings.validate().map_err(ServiceError::Invalid)?;
        self.store.set_team_settings(business, settings).await?;
        for m in self.store.team_members(business).await? {
            self.forget_account(Party::Owner(m.user));
        }
        self.team_rules.invalidate(&business);
        self.tell_team(business, json!({"change": "settings", "settings": settings})).await;
        Ok(settings)
    }

    /// Assigns a conversation of the caller's business to `assignee` (the
    /// owner or a member), or unassigns it (`None`). Owners and admins
    /// assign anyone; an agent takes an unassigned one or lets go of theirs.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn assign(
        &self,
        actor: &Actor,
        id: ConversationId,
        assignee: Option<UserId>,
    ) -> ServiceResult<omnibiz_domain::views::ConversationView> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        let (Side::Owner, Some(seat), Principal::User { id: me, .. }) = (side, actor.seat, actor.principal) else {
            return Err(ServiceError::Forbidden("only the business's team assigns conversations".into()));
        };
        if !seat.manages() {
            let allowed = match assignee {
                Some(a) => a == me && conv.assignee.is_none_or(|c| c == me),
                None => conv.assignee == Some(me),
            };
            if !allowed {
                return Err(ServiceError::Forbidden(
                    "an agent takes unassigned conversations and lets go of their own only".into(),
                ));
            }
        }
        if let Some(a) = assignee
            && a != seat.business
            && self.store.membership(a).await?.is_none_or(|m| m.business != seat.business)
        {
            return Err(ServiceError::Invalid("assignee: not a member of this team".into()));
        }
        let now = self.store.set_assignee(id, assignee, Utc::now()).await?.ok_or_else(not_found_conversation)?;
        if conv.assignee != assignee {
            self.tell_assignment(seat.business, id, assignee, conv.assignee, Some(actor)).await;
        }
        Ok(self.views(actor, std::slice::from_ref(&now)).await?.remove(0))
    }

    /// How many of the caller's business's open conversations are theirs,
    /// unassigned, and in all they may see.
    pub async fn assignment_counts(&self, actor: &Actor) -> ServiceResult<omnibiz_store::AssignmentCounts> {
        let (Some(seat), Principal::User { id: me, .. }) = (actor.seat, actor.principal) else {
            return Err(ServiceError::Forbidden("only the business's team has assignments".into()));
        };
        let mut c = self.store.assignment_counts(seat.business, me).await?;
        if !seat.sees_all() {
            c.all = c.mine + c.unassigned;
        }
        Ok(c)
    }

    /// After a customer's message in a direct conversation: when the business
    /// assigns automatically and the rules are not known to say no, look
    /// (off the send's path) for an agent to take it.
    pub(super) fn maybe_auto_assign(&self, conv: ConversationId, business: UserId) {
        if self.team_rules.get(&business).is_some_and(|r| !r.auto_assign) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.auto_assign(conv, business).await {
                tracing::warn!(error = %e, conversation = %conv, "automatic assignment failed; the conversation stays unassigned");
            }
        });
    }

    /// Assigns an unassigned conversation to an online agent under the
    /// business's bound: the one with the fewest open conversations, in turn
    /// among equals. Nobody online or everyone full: it stays unassigned.
    async fn auto_assign(&self, conv: ConversationId, business: UserId) -> ServiceResult<()> {
        let rules = match self.team_rules.get(&business) {
            Some(r) => r,
            None => {
                let r = self.store.team_settings(business).await?;
                self.team_rules.insert(business, r);
                r
            }
        };
        if !rules.auto_assign {
            return Ok(());
        }
        let Some(c) = self.store.get_conversation(conv).await? else { return Ok(()) };
        if c.assignee.is_some() || c.group.is_some() {
            return Ok(());
        }
        let agents: Vec<UserId> = self
            .store
            .team_members(business)
            .await?
            .into_iter()
            .filter(|m| m.role == TeamRole::Agent)
            .map(|m| m.user)
            .collect();
        let rooms: Vec<String> = agents.iter().map(|a| Party::Owner(*a).room()).collect();
        let online = self.presence.online(&rooms).await;
        let mut open: Vec<(u64, UserId)> = Vec::new();
        for (agent, on) in agents.into_iter().zip(online) {
            if !on {
                continue;
            }
            let n = self.store.assignment_counts(business, agent).await?.mine;
            if n < u64::from(rules.max_open_per_agent) {
                open.push((n, agent));
            }
        }
        let Some(least) = open.iter().map(|(n, _)| *n).min() else { return Ok(()) };
        let ties: Vec<UserId> = open.iter().filter(|(n, _)| *n == least).map(|(_, a)| *a).collect();
        let pick = ties[self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ties.len()];
        if self.store.claim_unassigned(conv, pick, Utc::now()).await?.is_some() {
            self.tell_assignment(business, conv, Some(pick), None, None).await;
        }
        Ok(())
    }

    /// `conversation_assigned` to the conversation's room (the business side
    /// only) and to everyone in the team on their own topic. `by`: who
    /// assigned it (`None`: automatic assignment).
    async fn tell_assignment(
        &self,
        business: UserId,
        id: ConversationId,
        assignee: Option<UserId>,
        previous: Option<UserId>,
        by: Option<&Actor>,
    ) {
        let payload = json!({
            "conversationId": id.to_hex(),
            "assignee": assignee.map(|a| a.to_hex()),
            "previous": previous.map(|a| a.to_hex()),
            "assignedBy": by.map(|a| a.principal.id_hex()),
            "automatic": by.is_none(),
            "isPrivate": true,
        });
        self.publish(Topic::Conversation(id), EventKind::ConversationAssigned, Some(id), payload.clone(), None).await;
        for party in self.team_parties(business).await {
            self.publish(Topic::Principal(party), EventKind::ConversationAssigned, Some(id), payload.clone(), None)
                .await;
        }
        metrics::counter!("assignments_total").increment(1);
    }

    /// `team_updated` to the owner and every member.
    async fn tell_team(&self, business: UserId, mut payload: serde_json::Value) {
        payload["business"] = business.to_hex().into();
        for party in self.team_parties(business).await {
            self.publish(Topic::Principal(party), EventKind::TeamUpdated, None, payload.clone(), None).await;
        }
    }

    /// The owner and the members, as bus topics (a failed read: the owner only).
    async fn team_parties(&self, business: UserId) -> Vec<Party> {
        let mut out = vec![Party::Owner(business)];
        match self.store.team_members(business).await {
            Ok(ms) => out.extend(ms.into_iter().map(|m| Party::Owner(m.user))),
            Err(e) => tracing::warn!(error.cause_chain = ?e, "reading the team to notify it failed; the owner only"),
        }
        out
    }
}
