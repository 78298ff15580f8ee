//! [`WebhookStore`] on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, Endpoint, HookEvent, OutboxEvent};
use omnibiz_domain::{EndpointId, UserId, events};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::*;
use super::schema::*;
use crate::prelude::*;
use crate::{OwnerShare, StoreResult};

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_endpoint(&self, e: &Endpoint) -> StoreResult<()> {
        let e = e.clone();
        self.with("creating a webhook endpoint", move |c| {
            let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
            c.execute(
                &format!("INSERT INTO hook_endpoints ({ENDPOINT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"),
                params![
                    e.id.to_hex(),
                    e.owner.to_hex(),
                    e.url,
                    e.secret,
                    serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
                    e.description,
                    i64::from(e.enabled),
                    e.disabled_reason,
                    e.failure_streak,
                    ms(e.created_at),
                    ms(e.updated_at)
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn list_endpoints(&self, owner: UserId) -> StoreResult<Vec<Endpoint>> {
        self.with("listing webhook endpoints", move |c| {
            let mut stmt =
                c.prepare(&format!("SELECT {ENDPOINT_COLS} FROM hook_endpoints WHERE owner = ?1 ORDER BY id"))?;
            stmt.query_map([owner.to_hex()], endpoint_row)?.collect()
        })
        .await
    }

    async fn get_endpoint(&self, id: EndpointId) -> StoreResult<Option<Endpoint>> {
        self.with("reading a webhook endpoint", move |c| {
            c.query_row(
                &format!("SELECT {ENDPOINT_COLS} FROM hook_endpoints WHERE id = ?1"),
                [id.to_hex()],
                endpoint_row,
            )
            .optional()
        })
        .await
    }

    async fn set_endpoint_secret(&self, id: EndpointId, secret: &str) -> StoreResult<bool> {
        let secret = secret.to_owned();
        self.with("resealing a webhook secret", move |c| {
            c.execute("UPDATE hook_endpoints SET secret = ?2 WHERE id = ?1", params![id.to_hex(), secret])
                .map(|n| n == 1)
        })
        .await
    }

    async fn endpoint_secrets(&self) -> StoreResult<Vec<(EndpointId, String)>> {
        self.with("reading webhook secrets", move |c| {
            let mut stmt = c.prepare("SELECT id, secret FROM hook_endpoints ORDER BY id")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, secret) = row?;
                // Ids are written by us: one that does not parse is skipped, not fatal.
                if let Ok(id) = id.parse::<EndpointId>() {
                    out.push((id, secret));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn save_endpoint(&self, e: &Endpoint) -> StoreResult<bool> {
        let e = e.clone();
        self.with("saving a webhook endpoint", move |c| {
            let events: Vec<&str> = e.events.iter().map(|x| x.as_str()).collect();
            c.execute(
                "UPDATE hook_endpoints SET url = ?2, events = ?3, description = ?4, enabled = ?5, \
                 disabled_reason = ?6, failure_streak = ?7, updated_at = ?8 WHERE id = ?1",
                params![
                    e.id.to_hex(),
                    e.url,
                    serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
                    e.description,
                    i64::from(e.enabled),
                    e.disabled_reason,
                    e.failure_streak,
                    ms(e.updated_at)
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn delete_endpoint(&self, id: EndpointId) -> StoreResult<bool> {
        self.with("deleting a webhook endpoint", move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM hook_deliveries WHERE endpoint_id = ?1", [id.to_hex()])?;
            let n = tx.execute("DELETE FROM hook_endpoints WHERE id = ?1", [id.to_hex()])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn endpoint_attempted(&self, id: EndpointId, ok: bool) -> StoreResult<i64> {
        self.with("counting a webhook attempt", move |c| {
            let sql = if ok {
                "UPDATE hook_endpoints SET failure_streak = 0 WHERE id = ?1 RETURNING failure_streak"
            } else {
                "UPDATE hook_endpoints SET failure_streak = failure_streak + 1 WHERE id = ?1 RETURNING failure_streak"
            };
            Ok(c.query_row(sql, [id.to_hex()], |r| r.get(0)).optional()?.unwrap_or(0))
        })
        .await
    }

    async fn disable_endpoint(&self, id: EndpointId, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let reason = reason.to_owned();
        self.with("disabling a webhook endpoint", move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE hook_endpoints SET enabled = 0, disabled_reason = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND enabled = 1",
                params![id.to_hex(), reason, ms(now)],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE hook_deliveries SET status = 'paused', updated_at = ?2 \
                     WHERE endpoint_id = ?1 AND status = 'pending'",
                    params![id.to_hex(), ms(now)],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.with("reading the webhook outbox", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, kind, conversation_id, at, data FROM hook_events ORDER BY at, id LIMIT {limit}"
            ))?;
            let mut pending = stmt
                .query_map([], |row| {
                    let kind: String = row.get(1)?;
                    Ok(OutboxEvent {
                        id: row.get(0)?,
                        kind: HookEvent::parse(&kind).ok_or_else(|| bad(1, "unknown event kind"))?,
                        conversation: id(row, 2)?,
                        at: from_ms(row.get(3)?),
                        data: json_col(row, 4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // `message.created` is built now, from the message as it is now
            // (edited, or deleted), as on MongoDB: see `omnibiz_domain::events`.
            let mut read = c.prepare(&format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1"))?;
            for e in &mut pending {
                let Some(message) = events::message_of_event(&e.id) else { continue };
                if let Some(m) = read.query_row([message.to_hex()], msg_row).optional()? {
                    e.data = events::message_created_data(&m);
                }
            }
            Ok(pending)
        })
        .await
    }

    async fn fan_out(&self, event: &OutboxEvent, deliveries: &[Delivery]) -> StoreResult<()> {
        let event_id = event.id.clone();
        let deliveries = deliveries.to_vec();
        self.with("fanning out a webhook event", move |c| {
            let tx = c.transaction()?;
            for d in &deliveries {
                tx.execute(
                    &format!(
                        "INSERT OR IGNORE INTO hook_deliveries ({DELIVERY_COLS}) \
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
                    ),
                    params![
                        d.id,
                        d.target.oid().to_hex(),
                        d.owner.to_hex(),
                        d.event_id,
                        d.kind.as_str(),
                        d.conversation.to_hex(),
                        d.body,
                        d.status.as_str(),
                        d.attempts,
                        ms(d.next_at),
                        ms(d.created_at),
                        ms(d.updated_at),
                        serde_json::to_string(&d.log).unwrap_or_else(|_| "[]".into()),
                        d.unread_check.and_then(|u| serde_json::to_string(&u).ok()),
                        d.target.channel(),
                    ],
                )?;
            }
            tx.execute("DELETE FROM hook_events WHERE id = ?1", [&event_id])?;
            tx.commit()
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        share: &OwnerShare,
    ) -> StoreResult<Vec<Delivery>> {
        let holder = holder.to_owned();
        let share = share.clone();
        self.with("claiming webhook deliveries", move |c| {
            let tx = c.transaction()?;
            // The earliest due of each owner first (at most `per_owner` each:
            // a backlog of one owner is not read in full), then picked in due
            // order within each owner's room.
            let per_owner = i64::try_from(share.per_owner).unwrap_or(i64::MAX);
            let candidates: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT id, owner FROM (SELECT id, owner, next_at, ROW_NUMBER() OVER \
                     (PARTITION BY owner ORDER BY next_at) AS nth FROM hook_deliveries WHERE status = 'pending' \
                     AND next_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)) WHERE nth <= ?2 \
                     ORDER BY next_at",
                )?;
                stmt.query_map(params![ms(now), per_owner], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let mut taken: HashMap<String, usize> = HashMap::new();
            let mut ids = Vec::new();
            for (id, owner) in candidates {
                if ids.len() == limit {
                    break;
                }
                let n = taken.entry(owner.clone()).or_default();
                let room =
                    owner.parse::<omnibiz_domain::ObjectId>().map_or(share.per_owner, |o| share.room(UserId(o), *n));
                if room > 0 {
                    *n += 1;
                    ids.push(id);
                }
            }
            let mut out = Vec::with_capacity(ids.len());
            {
                let mut stmt = tx.prepare(&format!(
                    "UPDATE hook_deliveries SET lease_until = ?1, lease_holder = ?2 WHERE id = ?3 \
                     RETURNING {DELIVERY_COLS}"
                ))?;
                for id in ids {
                    out.extend(stmt.query_map(params![ms(lease_until), holder, id], delivery_row)?);
                }
            }
            let out: Vec<Delivery> = out.into_iter().collect::<rusqlite::Result<_>>()?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn finish_delivery(&self, d: &Delivery, holder: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let d = d.clone();
        let holder = holder.to_owned();
        self.with("recording a webhook attempt", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = ?3, attempts = ?4, next_at = ?5, log = ?6, updated_at = ?7, \
                 lease_until = NULL, lease_holder = NULL WHERE id = ?1 AND lease_holder = ?2",
                params![
                    d.id,
                    holder,
                    d.status.as_str(),
                    d.attempts,
                    ms(d.next_at),
                    serde_json::to_string(&d.log).unwrap_or_else(|_| "[]".into()),
                    ms(now)
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        endpoint: EndpointId,
        before: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.with("listing webhook deliveries", move |c| {
            let mut sql = format!("SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE endpoint_id = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![endpoint.to_hex().into()];
            if let Some((at, id)) = before {
                args.push(ms(at).into());
                args.push(id.into());
                sql += " AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))";
            }
            sql += &format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}");
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), delivery_row)?.collect()
        })
        .await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let id = id.to_owned();
        self.with("reading a webhook delivery", move |c| {
            c.query_row(&format!("SELECT {DELIVERY_COLS} FROM hook_deliveries WHERE id = ?1"), [id], delivery_row)
                .optional()
        })
        .await
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.to_owned();
        self.with("redelivering a webhook", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = 'pending', next_at = ?2, updated_at = ?2, unread_check = NULL, \
                 lease_until = NULL, lease_holder = NULL WHERE id = ?1",
                params![id, ms(now)],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn move_deliveries(
        &self,
        endpoint: EndpointId,
        from: DeliveryStatus,
        to: DeliveryStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.with("moving webhook deliveries", move |c| {
            c.execute(
                "UPDATE hook_deliveries SET status = ?3, next_at = MIN(next_at, ?4), updated_at = ?4 \
                 WHERE endpoint_id = ?1 AND status = ?2",
                params![endpoint.to_hex(), from.as_str(), to.as_str(), ms(now)],
            )
            .map(|n| n as u64)
        })
        .await
    }
}
