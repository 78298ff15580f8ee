//! [`TeamStore`] on MongoDB: `team_members` (`_id` = the member's user id,
//! so a user is in one team at most; `business`, `role`, `addedAt`) and
//! `team_settings` (`_id` = the business).

use anyhow::Context as _;
use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use omnibiz_domain::{TeamMember, TeamRole, TeamSettings, UserId};

use super::MongoStore;
use super::codec::{collect, date};
use super::errors::{classify, is_duplicate_key};
use crate::{Joined, StoreError, StoreResult, TeamStore};

fn member_from(d: &Document) -> anyhow::Result<TeamMember> {
    Ok(TeamMember {
        user: UserId(d.get_object_id("_id")?),
        business: UserId(d.get_object_id("business")?),
        role: TeamRole::parse(d.get_str("role")?).context("unknown team role")?,
        added_at: d.get_datetime("addedAt")?.to_chrono(),
    })
}

#[async_trait]
impl TeamStore for MongoStore {
    async fn add_team_member(&self, m: &TeamMember) -> StoreResult<Joined> {
        let what = "adding a team member";
        let doc = doc! {"_id": m.user.oid(), "business": m.business.oid(), "role": m.role.as_str(), "addedAt": date(m.added_at)};
        match self.team_members.insert_one(doc).await {
            Ok(_) => return Ok(Joined::Added),
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(classify(what, e)),
        }
        let changed = self
            .team_members
            .update_one(
                doc! {"_id": m.user.oid(), "business": m.business.oid()},
                doc! {"$set": {"role": m.role.as_str()}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(if changed.matched_count == 1 { Joined::Updated } else { Joined::OtherTeam })
    }

    async fn remove_team_member(&self, business: UserId, user: UserId) -> StoreResult<bool> {
        let r = self
            .team_members
            .delete_one(doc! {"_id": user.oid(), "business": business.oid()})
            .await
            .map_err(|e| classify("removing a team member", e))?;
        Ok(r.deleted_count == 1)
    }

    async fn team_members(&self, business: UserId) -> StoreResult<Vec<TeamMember>> {
        let what = "listing team members";
        let cursor = self
            .team_members
            .find(doc! {"business": business.oid()})
            .sort(doc! {"addedAt": 1, "_id": 1})
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| member_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn membership(&self, user: UserId) -> StoreResult<Option<TeamMember>> {
        let what = "reading a team membership";
        let d = self.team_members.find_one(doc! {"_id": user.oid()}).await.map_err(|e| classify(what, e))?;
        d.as_ref().map(member_from).transpose().context(what).map_err(StoreError::Other)
    }

    async fn team_settings(&self, business: UserId) -> StoreResult<TeamSettings> {
        let what = "reading team settings";
        let d = self.team_settings.find_one(doc! {"_id": business.oid()}).await.map_err(|e| classify(what, e))?;
        // Stored with serde's names (`agentsSeeAll`, `autoAssign`, `maxOpenPerAgent`); `_id` set aside.
        Ok(d.map(|mut d| {
            d.remove("_id");
            mongodb::bson::from_document(d).unwrap_or_default()
        })
        .unwrap_or_default())
    }

    async fn set_team_settings(&self, business: UserId, s: TeamSettings) -> StoreResult<()> {
        self.team_settings
            .update_one(
                doc! {"_id": business.oid()},
                doc! {"$set": mongodb::bson::to_document(&s).map_err(|e| StoreError::Other(e.into()))?},
            )
            .upsert(true)
            .await
            .map_err(|e| classify("saving team settings", e))?;
        Ok(())
    }
}
