//! [`WebhookStore`] on MongoDB.

use anyhow::Context as _;
use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, doc};
use mongodb::options::ReturnDocument;
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, Endpoint, HookEvent, OutboxEvent};
use omnibiz_domain::{ConversationId, EndpointId, UserId, events};

use super::MongoStore;
use super::codec::*;
use super::errors::*;
use crate::prelude::*;
use crate::{OwnerShare, StoreResult};

#[async_trait]
impl WebhookStore for MongoStore {
    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        self.endpoints.insert_one(endpoint_doc(e)).await.map_err(|e| classify("creating a webhook endpoint", e))?;
        Ok(())
    }

    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>> {
        Ok(self.endpoints_of_many(&[owner]).await?.remove(&owner).unwrap_or_default())
    }

    async fn endpoints_of_many(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, Vec<Endpoint>>> {
        let what = "listing webhook endpoints";
        let mut out: HashMap<UserId, Vec<Endpoint>> = HashMap::new();
        if owners.is_empty() {
            return Ok(out);
        }
        let ids: Vec<_> = owners.iter().map(|o| o.oid()).collect();
        let docs = collect(
            what,
            self.endpoints
                .find(doc! {"owner": {"$in": ids}})
                .sort(doc! {"_id": 1})
                .await
                .map_err(|e| classify(what, e))?,
        )
        .await?;
        for d in &docs {
            let e = endpoint_from(d).context(what)?;
            out.entry(e.owner).or_default().push(e);
        }
        Ok(out)
    }

    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>> {
        let what = "reading a webhook endpoint";
        let d = self.endpoints.find_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(d.as_ref().map(endpoint_from).transpose().context(what)?)
    }

    async fn set_endpoint_secret(&self, id: EndpointId, secret: &str) -> StoreResult<bool> {
        let what = "resealing a webhook secret";
        let r = self
            .endpoints
            .update_one(doc! {"_id": id.oid()}, doc! {"$set": {"secret": secret}})
            .await
            .map_err(|e| classify(what, e))?;
        Ok(r.matched_count == 1)
    }

    async fn endpoint_secrets(&self) -> StoreResult<Vec<(EndpointId, String)>> {
        let what = "reading webhook secrets";
        let cursor = self
            .endpoints
            .find(doc! {})
            .projection(doc! {"_id": 1, "secret": 1})
            .await
            .map_err(|e| classify(what, e))?;
        let docs = collect(what, cursor).await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some((EndpointId::from(d.get_object_id("_id").ok()?), d.get_str("secret").ok()?.to_owned()))
            })
            .collect())
    }

    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool> {
        let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
        let r = self
            .endpoints
            .update_one(
                doc! {"_id": e.id.oid()},
                doc! {"$set": {
                    "url": &e.url, "events": events, "description": &e.description, "enabled": e.enabled,
                    "disabledReason": e.disabled_reason.clone(), "failureStreak": e.failure_streak,
                    "updatedAt": date(e.updated_at),
                }},
            )
            .await
            .map_err(|e| classify("saving a webhook endpoint", e))?;
        Ok(r.matched_count == 1)
    }

    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool> {
        let what = "deleting a webhook endpoint";
        let r = self.endpoints.delete_one(doc! {"_id": id.oid()}).await.map_err(|e| classify(what, e))?;
        self.deliveries.delete_many(doc! {"endpointId": id.oid()}).await.map_err(|e| classify(what, e))?;
        Ok(r.deleted_count == 1)
    }

    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64> {
        let what = "counting a webhook attempt";
        let update = if ok {
            doc! {"$set": {"failureStreak": 0_i64}}
        } else {
            doc! {"$inc": {"failureStreak": 1_i64}}
        };
        let d = self
            .endpoints
            .find_one_and_update(doc! {"_id": id.oid()}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| classify(what, e))?;
        Ok(d.map_or(0, |d| Doc(&d).int("failureStreak")))
    }

    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let what = "disabling a webhook endpoint";
        let r = self
            .endpoints
            .update_one(
                doc! {"_id": id.oid(), "enabled": true},
                doc! {"$set": {"enabled": false, "disabledReason": reason, "updatedAt": date(now)}},
            )
            .await
            .map_err(|e| classify(what, e))?;
        if r.modified_count == 1 {
            self.move_deliveries(id, DeliveryStatus::Pending, DeliveryStatus::Paused, now).await?;
        }
        Ok(r.modified_count == 1)
    }

    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let what = "reading the webhook outbox";
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        // No sort: a sort on `_id` can have the server walk the `_id` index
        // past every message ever stored to find the few pending ones, or
        // sort the whole pending set under a backlog; the `hook` index alone
        // serves this filter, and a pass's events are ordered below anyway.
        let msgs =
            collect(what, self.messages.find(doc! {"hook": true}).limit(limit_i).await.map_err(|e| classify(what, e))?)
                .await?;
        let mut events = Vec::with_capacity(msgs.len());
        for d in &msgs {
            let m = msg_from(d).context(what)?;
            events.push(OutboxEvent {
                id: events::message_created_id(m.id),
                kind: HookEvent::MessageCreated,
                conversation: m.conversation_id,
                at: m.created_at,
                data: events::message_created_data(&m),
            });
        }
        // Conversations, and edited or deleted messages, carry their events in a `hooks` map.
        let convs = pending_hooks(&self.conversations, "_id", limit_i).await?;
        let changed = pending_hooks(&self.messages, "conversationId", limit_i).await?;
        let owners = convs.iter().map(|d| (d, "_id")).chain(changed.iter().map(|d| (d, "conversationId")));
        for (d, conv_field) in owners {
            let conversation: ConversationId = Doc(d).oid(conv_field).context(what)?.into();
            let Ok(hooks) = d.get_document("hooks") else { continue };
            for (id, entry) in hooks {
                let Some(entry) = entry.as_document() else { continue };
                let e = Doc(entry);
                let Some(kind) = e.opt_str("kind").and_then(|k| HookEvent::parse(&k)) else { continue };
                let data = entry.get_document("data").cloned().unwrap_or_default();
                events.push(OutboxEvent {
                    id: id.clone(),
                    kind,
                    conversation,
                    at: e.date("at").unwrap_or_default(),
                    data: Bson::Document(data).into_relaxed_extjson(),
                });
            }
        }
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        events.truncate(limit);
        Ok(events)
    }

    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()> {
        self.fan_out_all(&[(event.clone(), deliveries.to_vec())]).await
    }

    /// One `insert_many` for every delivery of the pass and one `update_many`
    /// clearing its message events — not a write per message, which the
    /// outbox would otherwise add to every send even for owners without endpoints.
    async fn fan_out_all(&self, batch: &[(OutboxEvent, Vec<Delivery>)]) -> StoreResult<()> {
        let what = "fanning out webhook events";
        let docs =
            batch.iter().flat_map(|(_, d)| d).map(delivery_doc).collect::<anyhow::Result<Vec<_>>>().context(what)?;
        // Deliveries have deterministic ids: those a previous, interrupted fan-out stored stay as they are.
        if !docs.is_empty()
            && let Err(e) = self.deliveries.insert_many(docs).ordered(false).await
            && !only_duplicates(&e)
        {
            return Err(classify(what, e));
        }
        let messages =
            batch.iter().filter_map(|(e, _)| events::message_of_event(&e.id)).map(|m| m.oid()).collect::<Vec<_>>();
        if !messages.is_empty() {
            self.messages
                .update_many(doc! {"_id": {"$in": messages}}, doc! {"$unset": {"hook": ""}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        for (event, _) in batch.iter().filter(|(e, _)| events::message_of_event(&e.id).is_none()) {
            // A message change's id names its message; others live on the conversation.
            let owner = events::changed_message_of_event(&event.id).map(|m| m.oid());
            let (coll, key) = match owner {
                Some(message) => (&self.messages, message),
                None => (&self.conversations, event.conversation.oid()),
            };
            coll.update_one(doc! {"_id": key}, doc! {"$unset": {format!("hooks.{}", event.id): ""}})
                .await
                .map_err(|e| classify(what, e))?;
            // The flag goes only when no other event is waiting; one written
            // meanwhile set it again in its own update.
            coll.update_one(doc! {"_id": key, "hooks": {}}, doc! {"$unset": {"hookPending": "", "hooks": ""}})
                .await
                .map_err(|e| classify(what, e))?;
        }
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        share: &OwnerShare,
    ) -> StoreResult<Vec<Delivery>> {
        let what = "claiming webhook deliveries";
        let mut out: Vec<Delivery> = Vec::new();
        let mut taken: HashMap<UserId, usize> = HashMap::new();
        // Owners with no room left are skipped by the query itself.
        let mut full: Vec<bson::oid::ObjectId> =
            share.held.keys().filter(|o| share.room(**o, 0) == 0).map(|o| o.oid()).collect();
        while out.len() < limit {
            let mut filter = doc! {
                "status": "pending", "nextAt": {"$lte": date(now)},
                "$or": [{"leaseUntil": null}, {"leaseUntil": {"$lte": date(now)}}],
            };
            if !full.is_empty() {
                filter.insert("owner", doc! {"$nin": full.clone()});
            }
            let claimed = self
                .deliveries
                .find_one_and_update(filter, doc! {"$set": {"leaseUntil": date(lease_until), "leaseHolder": holder}})
                .sort(doc! {"nextAt": 1})
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| classify(what, e))?;
            match claimed {
                // A lease that ends before `now` would match again: never hand one out twice.
                Some(d) if !out.iter().any(|x: &Delivery| Some(x.id.as_str()) == d.get_str("_id").ok()) => {
                    let d = delivery_from(&d).context(what)?;
                    let n = taken.entry(d.owner).or_default();
                    *n += 1;
                    if share.room(d.owner, *n) == 0 {
                        full.push(d.owner.oid());
                    }
                    out.push(d);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let what = "recording a webhook attempt";
        let r = self
            .deliveries
            .update_one(
                doc! {"_id": &d.id, "leaseHolder": holder},
                doc! {"$set": {
                    "status": d.status.as_str(), "attempts": d.attempts, "nextAt": date(d.next_at),
                    "log": bson::to_bson(&d.log).context("encoding the attempt log")?, "updatedAt": date(now),
                    "leaseUntil": Bson::Null, "leaseHolder": Bson::Null,
                }},
            )
            .await
            .map_err(|e| classify(what, e))?;
        Ok(r.matched_count == 1)
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        let what = "listing webhook deliveries";
        let mut filter = doc! {"endpointId": endpoint.oid()};
        if let Some((at, id)) = before {
            filter.insert(
                "$or",
                vec![doc! {"createdAt": {"$lt": date(at)}}, doc! {"createdAt": date(at), "_id": {"$lt": id}}],
            );
        }
        let docs = collect(
            what,
            self.deliveries
                .find(filter)
                .sort(doc! {"createdAt": -1, "_id": -1})
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .await
                .map_err(|e| classify(what, e))?,
        )
        .await?;
        Ok(docs.iter().map(delivery_from).collect::<anyhow::Result<_>>().context(what)?)
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let what = "reading a webhook delivery";
        let d = self.deliveries.find_one(doc! {"_id": id}).await.map_err(|e| classify(what, e))?;
        Ok(d.as_ref().map(delivery_from).transpose().context(what)?)
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let r = self
            .deliveries
            .update_one(
                doc! {"_id": id},
                doc! {"$set": {
                    "status": "pending", "nextAt": date(now), "updatedAt": date(now), "unreadCheck": Bson::Null,
                    "leaseUntil": Bson::Null, "leaseHolder": Bson::Null,
                }},
            )
            .await
            .map_err(|e| classify("redelivering a webhook", e))?;
        Ok(r.matched_count == 1)
    }

    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let r = self
            .deliveries
            .update_many(
                doc! {"endpointId": endpoint.oid(), "status": from.as_str()},
                doc! {"$set": {"status": to.as_str(), "updatedAt": date(now)}, "$min": {"nextAt": date(now)}},
            )
            .await
            .map_err(|e| classify("moving webhook deliveries", e))?;
        Ok(r.modified_count)
    }
}
