//! [`AccountStore`] on SQLite.

use std::collections::HashSet;

use async_trait::async_trait;
use omnibiz_domain::{Customer, CustomerId, Party, Side, User, UserId, UserRole};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::*;
use super::schema::*;
use crate::prelude::*;
use crate::{CustomerQuery, StoreResult};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let u = user.clone();
        self.with("inserting a user", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO users (id, name, email, phone, role, business_name) VALUES (?1,?2,?3,?4,?5,?6)",
                params![u.id.to_hex(), u.name, u.email, u.phone, u.role.as_str(), u.business_name],
            )
            .map(drop)
        })
        .await
    }

    async fn insert_customers(&self, customers: &[Customer]) -> StoreResult<()> {
        let cs = customers.to_vec();
        self.with("inserting customers", move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(&format!(
                    "INSERT OR REPLACE INTO customers ({CUST_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
                ))?;
                for x in &cs {
                    stmt.execute(params![
                        x.id.to_hex(),
                        x.name,
                        x.email,
                        x.phone,
                        x.invited_by.to_hex(),
                        x.total_orders,
                        x.total_spent,
                        x.last_order_date.map(ms),
                        ms(x.created_at),
                        x.last_login.map(ms)
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.with("reading a user", move |c| {
            c.query_row(
                "SELECT id, name, email, phone, role, business_name FROM users WHERE id = ?1",
                [id.to_hex()],
                |r| {
                    let role: String = r.get(4)?;
                    Ok(User {
                        id: self::id(r, 0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        phone: r.get(3)?,
                        role: UserRole::parse(&role),
                        business_name: r.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn get_customer(&self, id: CustomerId) -> StoreResult<Option<Customer>> {
        self.with("reading a customer", move |c| {
            c.query_row(&format!("SELECT {CUST_COLS} FROM customers WHERE id = ?1"), [id.to_hex()], cust_row).optional()
        })
        .await
    }

    async fn customers_by_ids(&self, ids: &[CustomerId]) -> StoreResult<Vec<Customer>> {
        let ids: Vec<String> = ids.iter().map(|i| i.to_hex()).collect();
        self.with("reading customers", move |c| {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!("SELECT {CUST_COLS} FROM customers WHERE id IN ({})", placeholders(ids.len()));
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(ids.iter()), cust_row)?.collect()
        })
        .await
    }

    async fn users_by_email(&self, email: &str, limit: usize) -> StoreResult<Vec<UserId>> {
        let email = email.trim().to_owned();
        self.with("finding a user by email", move |c| {
            c.prepare("SELECT id FROM users WHERE lower(email) = lower(?1) ORDER BY id LIMIT ?2")?
                .query_map(params![email, i64::try_from(limit).unwrap_or(i64::MAX)], |r| self::id(r, 0))?
                .collect()
        })
        .await
    }

    async fn existing_accounts(&self, parties: &[Party]) -> StoreResult<HashSet<Party>> {
        let parties = parties.to_vec();
        self.with("checking accounts", move |c| {
            let mut found = HashSet::new();
            for side in [Side::Owner, Side::Customer] {
                let ids: Vec<String> = parties.iter().filter(|p| p.side() == side).map(|p| p.oid().to_hex()).collect();
                if ids.is_empty() {
                    continue;
                }
                let table = if side == Side::Owner { "users" } else { "customers" };
                let sql = format!("SELECT id FROM {table} WHERE id IN ({})", placeholders(ids.len()));
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(ids.iter()), |r| r.get::<_, String>(0))?;
                for id in rows {
                    if let Ok(oid) = id?.parse::<omnibiz_domain::ObjectId>() {
                        found.insert(Party::of(side, oid));
                    }
                }
            }
            Ok(found)
        })
        .await
    }

    async fn list_customers(&self, q: &CustomerQuery) -> StoreResult<Vec<Customer>> {
        let q = q.clone();
        self.with("listing customers", move |c| {
            let mut sql = format!("SELECT {CUST_COLS} FROM customers WHERE invited_by = ?1");
            let mut args: Vec<String> = vec![q.owner.to_hex()];
            if let Some(before) = q.before {
                args.push(before.to_hex());
                sql += &format!(" AND id < ?{}", args.len());
            }
            if let Some(term) = &q.q {
                args.push(like_pattern(term));
                let n = args.len();
                sql += &format!(
                    " AND (name LIKE ?{n} ESCAPE '\\' OR email LIKE ?{n} ESCAPE '\\' OR phone LIKE ?{n} ESCAPE '\\')"
                );
            }
            sql += &format!(" ORDER BY id DESC LIMIT {}", q.limit);
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(args.iter()), cust_row)?.collect()
        })
        .await
    }
}
