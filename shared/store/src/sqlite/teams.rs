//! [`TeamStore`] on SQLite: the `team_members` (one row per member, keyed
//! by the user) and `team_settings` tables.

use async_trait::async_trait;
use omnibiz_domain::{TeamMember, TeamRole, TeamSettings, UserId};
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::codec::{from_ms, id, ms};
use crate::{Joined, StoreResult, TeamStore};

const MEMBER_COLS: &str = "user, business, role, added_at";

fn member_row(row: &Row<'_>) -> rusqlite::Result<TeamMember> {
    let role: String = row.get(2)?;
    Ok(TeamMember {
        user: id(row, 0)?,
        business: id(row, 1)?,
        role: TeamRole::parse(&role).unwrap_or(TeamRole::Agent),
        added_at: from_ms(row.get(3)?),
    })
}

#[async_trait]
impl TeamStore for SqliteStore {
    async fn add_team_member(&self, m: &TeamMember) -> StoreResult<Joined> {
        let m = m.clone();
        self.with("adding a team member", move |c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO team_members (user, business, role, added_at) VALUES (?1, ?2, ?3, ?4)",
                params![m.user.to_hex(), m.business.to_hex(), m.role.as_str(), ms(m.added_at)],
            )?;
            let out = if inserted == 1 {
                Joined::Added
            } else {
                let changed = tx.execute(
                    "UPDATE team_members SET role = ?3 WHERE user = ?1 AND business = ?2",
                    params![m.user.to_hex(), m.business.to_hex(), m.role.as_str()],
                )?;
                if changed == 1 { Joined::Updated } else { Joined::OtherTeam }
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn remove_team_member(&self, business: UserId, user: UserId) -> StoreResult<bool> {
        self.with("removing a team member", move |c| {
            let n = c.execute(
                "DELETE FROM team_members WHERE user = ?1 AND business = ?2",
                params![user.to_hex(), business.to_hex()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn team_members(&self, business: UserId) -> StoreResult<Vec<TeamMember>> {
        self.with("listing team members", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {MEMBER_COLS} FROM team_members WHERE business = ?1 ORDER BY added_at, user"
            ))?;
            stmt.query_map([business.to_hex()], member_row)?.collect()
        })
        .await
    }

    async fn membership(&self, user: UserId) -> StoreResult<Option<TeamMember>> {
        self.with("reading a team membership", move |c| {
            c.query_row(&format!("SELECT {MEMBER_COLS} FROM team_members WHERE user = ?1"), [user.to_hex()], member_row)
                .optional()
        })
        .await
    }

    async fn team_settings(&self, business: UserId) -> StoreResult<TeamSettings> {
        self.with("reading team settings", move |c| {
            let json = c
                .query_row("SELECT settings FROM team_settings WHERE business = ?1", [business.to_hex()], |r| {
                    r.get::<_, String>(0)
                })
                .optional()?;
            Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
        })
        .await
    }

    async fn set_team_settings(&self, business: UserId, s: TeamSettings) -> StoreResult<()> {
        self.with("saving team settings", move |c| {
            c.execute(
                "INSERT INTO team_settings (business, settings) VALUES (?1, ?2) \
                 ON CONFLICT (business) DO UPDATE SET settings = excluded.settings",
                params![business.to_hex(), serde_json::to_string(&s).unwrap_or_else(|_| "{}".into())],
            )
            .map(drop)
        })
        .await
    }
}
