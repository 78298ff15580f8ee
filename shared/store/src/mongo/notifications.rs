//! [`NotificationStore`] on MongoDB: `push_subscriptions` (one document per
//! browser, unique by `endpoint`) and `notification_prefs` (`_id` =
//! `user:<id>` / `customer:<id>`).

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use mongodb::bson::{self, Document, doc};
use omnibiz_domain::notification::{Preferences, PushSubscription};
use omnibiz_domain::{Party, SubscriptionId};

use super::MongoStore;
use super::codec::{Doc, date};
use super::errors::classify;
use crate::{NotificationStore, StoreResult};

fn subscription_doc(s: &PushSubscription) -> Document {
    doc! {
        "_id": s.id.oid(), "party": s.party.room(), "endpoint": &s.endpoint, "p256dh": &s.p256dh,
        "auth": &s.auth, "userAgent": &s.user_agent, "createdAt": date(s.created_at),
    }
}

fn subscription_from(d: &Document) -> anyhow::Result<PushSubscription> {
    let x = Doc(d);
    let party = x.str("party")?;
    Ok(PushSubscription {
        id: x.oid("_id")?.into(),
        party: Party::from_room(&party).with_context(|| format!("field `party`: {party:?} names no one"))?,
        endpoint: x.str("endpoint")?,
        p256dh: x.str("p256dh")?,
        auth: x.str("auth")?,
        user_agent: x.opt_str("userAgent").unwrap_or_default(),
        created_at: x.date("createdAt").unwrap_or_default(),
    })
}

#[async_trait]
impl NotificationStore for MongoStore {
    async fn save_subscription(&self, s: &PushSubscription) -> StoreResult<PushSubscription> {
        let what = "saving a push subscription";
        let existing =
            self.subscriptions.find_one(doc! {"endpoint": &s.endpoint}).await.map_err(|e| classify(what, e))?;
        if let Some(old) = existing {
            let old = subscription_from(&old)?;
            if old.party == s.party {
                // Same person, same browser: keep the id, take the new keys.
                self.subscriptions
                    .update_one(
                        doc! {"_id": old.id.oid()},
                        doc! {"$set": {"p256dh": &s.p256dh, "auth": &s.auth, "userAgent": &s.user_agent}},
                    )
                    .await
                    .map_err(|e| classify(what, e))?;
                return Ok(PushSubscription { id: old.id, created_at: old.created_at, ..s.clone() });
            }
            self.subscriptions.delete_one(doc! {"_id": old.id.oid()}).await.map_err(|e| classify(what, e))?;
        }
        self.subscriptions.insert_one(subscription_doc(s)).await.map_err(|e| classify(what, e))?;
        Ok(s.clone())
    }

    async fn subscriptions_of(&self, party: Party) -> StoreResult<Vec<PushSubscription>> {
        Ok(self.subscriptions_of_many(&[party]).await?.remove(&party).unwrap_or_default())
    }

    async fn subscriptions_of_many(&self, parties: &[Party]) -> StoreResult<HashMap<Party, Vec<PushSubscription>>> {
        let what = "listing push subscriptions";
        let mut out: HashMap<Party, Vec<PushSubscription>> = HashMap::new();
        if parties.is_empty() {
            return Ok(out);
        }
        let rooms: Vec<String> = parties.iter().map(|p| p.room()).collect();
        let docs: Vec<Document> = self
            .subscriptions
            .find(doc! {"party": {"$in": rooms}})
            .sort(doc! {"createdAt": 1, "_id": 1})
            .await
            .map_err(|e| classify(what, e))?
            .try_collect()
            .await
            .map_err(|e| classify(what, e))?;
        for d in &docs {
            let s = subscription_from(d)?;
            out.entry(s.party).or_default().push(s);
        }
        Ok(out)
    }

    async fn get_subscription(&self, id: SubscriptionId) -> StoreResult<Option<PushSubscription>> {
        let what = "reading a push subscription";
        let d = self.subscriptions.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(d.as_ref().map(subscription_from).transpose()?)
    }

    async fn delete_subscription(&self, id: SubscriptionId, party: Option<Party>) -> StoreResult<bool> {
        let mut filter = doc! {"_id": id.oid()};
        if let Some(p) = party {
            filter.insert("party", p.room());
        }
        let r = self.subscriptions.delete_one(filter).await.map_err(|e| classify("removing a push subscription", e))?;
        Ok(r.deleted_count > 0)
    }

    async fn preferences(&self, party: Party) -> StoreResult<Preferences> {
        let what = "reading notification preferences";
        let d = self.preferences.find_one(doc! {"_id": party.room()}).await.map_err(|e| classify(what, e))?;
        let Some(mut d) = d else { return Ok(Preferences::default()) };
        d.remove("_id");
        let p = bson::from_document(d)
            .with_context(|| format!("stored notification preferences of {} are unreadable", party.room()))?;
        Ok(p)
    }

    async fn set_preferences(&self, party: Party, p: &Preferences) -> StoreResult<()> {
        let mut d = bson::to_document(p).context("encoding notification preferences")?;
        d.insert("_id", party.room());
        self.preferences
            .replace_one(doc! {"_id": party.room()}, d)
            .upsert(true)
            .await
            .map_err(|e| classify("saving notification preferences", e))?;
        Ok(())
    }
}
