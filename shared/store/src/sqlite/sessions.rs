//! [`SessionStore`] on SQLite: the `session_revocations` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use omnibiz_domain::Party;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_ms, ms};
use crate::{SessionStore, StoreResult};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn revoke_sessions(&self, party: Party, at: DateTime<Utc>) -> StoreResult<()> {
        let (key, at) = (party.room(), ms(at));
        self.with("revoking sessions", move |c| {
            c.execute(
                "INSERT INTO session_revocations (party, at) VALUES (?1, ?2) \
                 ON CONFLICT (party) DO UPDATE SET at = MAX(at, excluded.at)",
                params![key, at],
            )
            .map(drop)
        })
        .await
    }

    async fn sessions_revoked_at(&self, party: Party) -> StoreResult<Option<DateTime<Utc>>> {
        let key = party.room();
        self.with("reading session revocations", move |c| {
            c.query_row("SELECT at FROM session_revocations WHERE party = ?1", [key], |r| r.get::<_, i64>(0))
                .optional()
                .map(|at| at.map(from_ms))
        })
        .await
    }
}
