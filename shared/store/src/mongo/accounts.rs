//! [`AccountStore`] on MongoDB.

use std::collections::HashSet;

use anyhow::Context as _;
use async_trait::async_trait;
use mongodb::bson::{doc, oid::ObjectId};
use omnibiz_domain::{Customer, CustomerId, Party, Side, User, UserId, UserRole};

use super::MongoStore;
use super::codec::*;
use super::errors::*;
use crate::prelude::*;
use crate::{CustomerQuery, StoreError, StoreResult};

#[async_trait]
impl AccountStore for MongoStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let d = doc! {
            "_id": u.id.oid(), "name": &u.name, "email": &u.email, "phone": u.phone.clone(),
            "role": u.role.as_str(), "businessName": u.business_name.clone(),
        };
        self.users
            .replace_one(doc! {"_id": u.id.oid()}, d)
            .upsert(true)
            .await
            .map(drop)
            .map_err(|e| classify("inserting a user", e))
    }

    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()> {
        if customers.is_empty() {
            return Ok(());
        }
        self.customers
            .insert_many(customers.iter().map(cust_doc))
            .ordered(false)
            .await
            .map(drop)
            .map_err(|e| classify("inserting customers", e))
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        let what = "reading a user";
        let Some(d) = self.users.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))? else {
            return Ok(None);
        };
        let x = Doc(&d);
        Ok(Some(User {
            id,
            name: x.str("name").context(what)?,
            email: x.opt_str("email").unwrap_or_default(),
            phone: x.opt_str("phone"),
            role: UserRole::parse(&x.opt_str("role").unwrap_or_default()),
            business_name: x.opt_str("businessName"),
        }))
    }

    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>> {
        let what = "reading a customer";
        match self.customers.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))? {
            Some(d) => Ok(Some(cust_from(&d).context(what)?)),
            None => Ok(None),
        }
    }

    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>> {
        let what = "reading customers";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let oids: Vec<ObjectId> = ids.iter().map(CustomerId::oid).collect();
        let cursor = self.customers.find(doc! {"_id": {"$in": oids}}).await.map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| cust_from(d).context(what).map_err(StoreError::Other)).collect()
    }

    async fn users_by_email(&self, email: &str, limit: usize) -> StoreResult<Vec<UserId>> {
        let what = "finding a user by email";
        // Exact values (as given, and in lower case), so an index on
        // `email` the main app keeps serves the lookup.
        let given = email.trim();
        let forms: Vec<String> = vec![given.to_owned(), given.to_lowercase()];
        let cursor = self
            .users
            .find(doc! {"email": {"$in": forms}})
            .projection(doc! {"_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let mut docs = collect(what, cursor).await?;
        if docs.is_empty() {
            // Stored in another case: a case-blind match (a scan, for a
            // rare management call).
            let pattern = format!("^{}$", regex_escape(given));
            let cursor = self
                .users
                .find(doc! {"email": {"$regex": pattern, "$options": "i"}})
                .projection(doc! {"_id": 1})
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .await
                .map_err(|e| classify(what, e))?;
            docs = collect(what, cursor).await?;
        }
        Ok(docs.iter().filter_map(|d| d.get_object_id("_id").ok().map(UserId::from)).collect())
    }

    async fn existing_accounts(&self, parties: &[Party]) -> StoreResult<HashSet<Party>> {
        let what = "checking accounts";
        let mut found = HashSet::new();
        for side in [Side::Owner, Side::Customer] {
            let oids: Vec<ObjectId> = parties.iter().filter(|p| p.side() == side).map(|p| p.oid()).collect();
            if oids.is_empty() {
                continue;
            }
            let coll = if side == Side::Owner { &self.users } else { &self.customers };
            let cursor = coll
                .find(doc! {"_id": {"$in": oids}})
                .projection(doc! {"_id": 1})
                .await
                .map_err(|e| classify(what, e))?;
            for d in collect(what, cursor).await? {
                if let Ok(oid) = d.get_object_id("_id") {
                    found.insert(Party::of(side, oid));
                }
            }
        }
        Ok(found)
    }

    async fn list_customers(&self, q: &CustomerQuery) -> StoreResult<Vec<Customer>> {
        let what = "listing customers";
        let mut filter = doc! {"invitedBy": q.owner.oid()};
        if let Some(before) = q.before {
            filter.insert("_id", doc! {"$lt": before.oid()});
        }
        if let Some(term) = &q.q {
            let re = regex_escape(term);
            let m = |f: &str| doc! { f: {"$regex": &re, "$options": "i"} };
            filter.insert("$or", vec![m("name"), m("email"), m("phone")]);
        }
        let cursor = self
            .customers
            .find(filter)
            .sort(doc! {"_id": -1})
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        docs.iter().map(|d| cust_from(d).context(what).map_err(StoreError::Other)).collect()
    }
}
