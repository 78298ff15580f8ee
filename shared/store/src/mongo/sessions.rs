//! [`SessionStore`] on MongoDB: one document per principal in
//! `session_revocations` (`_id` = `user:<id>` / `customer:<id>`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::doc;
use omnibiz_domain::Party;

use super::MongoStore;
use super::codec::date;
use super::errors::classify;
use crate::{SessionStore, StoreResult};

#[async_trait]
impl SessionStore for MongoStore {
    async fn revoke_sessions(&self, party: Party, at: DateTime<Utc>) -> StoreResult<()> {
        self.revocations
            .update_one(doc! {"_id": party.room()}, doc! {"$max": {"at": date(at)}})
            .upsert(true)
            .await
            .map_err(|e| classify("revoking sessions", e))?;
        Ok(())
    }

    async fn sessions_revoked_at(&self, party: Party) -> StoreResult<Option<DateTime<Utc>>> {
        let what = "reading session revocations";
        let d = self.revocations.find_one(doc! {"_id": party.room()}).await.map_err(|e| classify(what, e))?;
        Ok(d.and_then(|d| d.get_datetime("at").ok().map(|t| t.to_chrono())))
    }
}
