//! [`NotificationStore`] on SQLite: the `push_subscriptions` and `notification_prefs` tables.

use async_trait::async_trait;
use omnibiz_domain::notification::{Preferences, PushSubscription};
use omnibiz_domain::{Party, SubscriptionId};
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::codec::{from_ms, id, ms};
use crate::{NotificationStore, StoreResult};

const SUB_COLS: &str = "id, party, endpoint, p256dh, auth, user_agent, created_at";

fn subscription_row(row: &Row<'_>) -> rusqlite::Result<PushSubscription> {
    let party: String = row.get(1)?;
    Ok(PushSubscription {
        id: id(row, 0)?,
        party: Party::from_room(&party).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, "not a party".into())
        })?,
        endpoint: row.get(2)?,
        p256dh: row.get(3)?,
        auth: row.get(4)?,
        user_agent: row.get(5)?,
        created_at: from_ms(row.get(6)?),
    })
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn save_subscription(&self, s: &PushSubscription) -> StoreResult<PushSubscription> {
        let s = s.clone();
        self.with("saving a push subscription", move |c| {
            let tx = c.transaction()?;
            // Same person, same browser: keep the id (a re-subscribe after a key change updates the keys).
            let kept: Option<String> = tx
                .query_row(
                    "SELECT id FROM push_subscriptions WHERE endpoint = ?1 AND party = ?2",
                    params![s.endpoint, s.party.room()],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match kept {
                Some(id) => {
                    tx.execute(
                        "UPDATE push_subscriptions SET p256dh = ?2, auth = ?3, user_agent = ?4 WHERE id = ?1",
                        params![id, s.p256dh, s.auth, s.user_agent],
                    )?;
                    id
                }
                None => {
                    // Someone else's browser until now, or a new one.
                    tx.execute("DELETE FROM push_subscriptions WHERE endpoint = ?1", [&s.endpoint])?;
                    tx.execute(
                        &format!("INSERT INTO push_subscriptions ({SUB_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
                        params![
                            s.id.to_hex(),
                            s.party.room(),
                            s.endpoint,
                            s.p256dh,
                            s.auth,
                            s.user_agent,
                            ms(s.created_at)
                        ],
                    )?;
                    s.id.to_hex()
                }
            };
            let stored = tx.query_row(
                &format!("SELECT {SUB_COLS} FROM push_subscriptions WHERE id = ?1"),
                [&id],
                subscription_row,
            )?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    async fn subscriptions_of(&self, party: Party) -> StoreResult<Vec<PushSubscription>> {
        self.with("listing push subscriptions", move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SUB_COLS} FROM push_subscriptions WHERE party = ?1 ORDER BY created_at, id"
            ))?;
            stmt.query_map([party.room()], subscription_row)?.collect()
        })
        .await
    }

    async fn get_subscription(&self, sid: SubscriptionId) -> StoreResult<Option<PushSubscription>> {
        self.with("reading a push subscription", move |c| {
            c.query_row(
                &format!("SELECT {SUB_COLS} FROM push_subscriptions WHERE id = ?1"),
                [sid.to_hex()],
                subscription_row,
            )
            .optional()
        })
        .await
    }

    async fn delete_subscription(&self, sid: SubscriptionId, party: Option<Party>) -> StoreResult<bool> {
        self.with("removing a push subscription", move |c| {
            let n = match party {
                Some(p) => c.execute(
                    "DELETE FROM push_subscriptions WHERE id = ?1 AND party = ?2",
                    params![sid.to_hex(), p.room()],
                )?,
                None => c.execute("DELETE FROM push_subscriptions WHERE id = ?1", [sid.to_hex()])?,
            };
            Ok(n > 0)
        })
        .await
    }

    async fn preferences(&self, party: Party) -> StoreResult<Preferences> {
        let doc: Option<String> = self
            .with("reading notification preferences", move |c| {
                c.query_row("SELECT prefs FROM notification_prefs WHERE party = ?1", [party.room()], |r| r.get(0))
                    .optional()
            })
            .await?;
        match doc {
            None => Ok(Preferences::default()),
            Some(d) => serde_json::from_str(&d)
                .map_err(|e| anyhow::anyhow!("stored notification preferences of {} are unreadable: {e}", party.room()))
                .map_err(Into::into),
        }
    }

    async fn set_preferences(&self, party: Party, p: &Preferences) -> StoreResult<()> {
        let doc = serde_json::to_string(p).map_err(anyhow::Error::from)?;
        self.with("saving notification preferences", move |c| {
            c.execute(
                "INSERT INTO notification_prefs (party, prefs) VALUES (?1, ?2) \
                 ON CONFLICT (party) DO UPDATE SET prefs = excluded.prefs",
                params![party.room(), doc],
            )
            .map(drop)
        })
        .await
    }
}
