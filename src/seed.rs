//! `omnibiz seed`: demo business owners and customers (with order stats),
//! one conversation per customer, and tokens to try them with.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use omnibiz_domain::{Customer, Side, User};
use omnibiz_service::auth::{Principal, mint_hs256};
use omnibiz_store::{NewMessage, Participants, Store, fixtures};
use rand::Rng as _;
use serde_json::json;

/// What to create.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub owners: usize,
    pub customers_per_owner: usize,
    /// The last this many customers of each owner get no conversation (to
    /// try starting one, from either side).
    pub fresh_customers: usize,
    /// Token lifetime.
    pub token_ttl: std::time::Duration,
    /// Base URL used in the printed curl lines.
    pub base_url: String,
    pub tokens_out: Option<PathBuf>,
}

const FIRST: &[&str] = &["Alice", "Bruno", "Chen", "Dara", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jun"];
const LAST: &[&str] = &["Silva", "Okafor", "Nguyen", "Müller", "Haddad", "Kowalski", "Tanaka", "Rossi", "Costa"];

fn person(i: usize) -> String {
    format!("{} {}", FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()])
}

/// Creates the data and returns the JSON written to `--tokens-out`.
pub async fn run(store: Arc<dyn Store>, secret: &[u8], plan: &SeedPlan) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(plan.owners >= 1, "--owners must be at least 1");
    let total = (plan.owners * (plan.customers_per_owner + 1)) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} seeding [{bar:30}] {pos}/{len} records ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if plan.owners * plan.customers_per_owner < 200 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let ttl = plan.token_ttl.as_secs();
    let mut rng = rand::rng();
    let mut owners_json = Vec::with_capacity(plan.owners);
    for o in 0..plan.owners {
        let name = if plan.owners == 1 { "Demo Owner".into() } else { format!("Owner {o}") };
        let owner = User {
            email: format!("owner{o}@demo.omnibiz.example"),
            phone: Some(format!("+1 555 01{:02}", o % 100)),
            business_name: Some(if plan.owners == 1 { "Demo Coffee Co.".into() } else { format!("Shop {o}") }),
            ..fixtures::owner(&name)
        };
        store.insert_user(&owner).await.context("inserting an owner")?;
        bar.inc(1);
        let now = Utc::now();
        let customers: Vec<Customer> = (0..plan.customers_per_owner)
            .map(|i| Customer {
                email: format!("customer{i}.o{o}@demo.omnibiz.example"),
                phone: Some(format!("+1 555 {:04}", i % 10_000)),
                total_orders: rng.random_range(0..40),
                total_spent: f64::from(rng.random_range(0..500_000)) / 100.0,
                last_order_date: Some(now - Duration::hours(rng.random_range(1..2000))),
                last_login: Some(now - Duration::minutes(rng.random_range(5..20_000))),
                created_at: now,
                ..fixtures::customer(owner.id, &person(i))
            })
            .collect();
        for chunk in customers.chunks(1000) {
            store.insert_customers(chunk).await.context("inserting customers")?;
        }
        let owner_p = Principal::User { id: owner.id, role: owner.role };
        let mut customers_json = Vec::with_capacity(customers.len());
        let with_conversation = plan.customers_per_owner.saturating_sub(plan.fresh_customers);
        for (i, c) in customers.iter().enumerate() {
            let token = mint_hs256(secret, &Principal::Customer { id: c.id }, ttl)?;
            if i >= with_conversation {
                customers_json.push(json!({
                    "id": c.id.to_hex(), "name": c.name, "token": token, "conversationId": null,
                }));
                bar.inc(1);
                continue;
            }
            let (conv, _) = store
                .get_or_create_conversation(&Participants::of(&owner, c), now)
                .await
                .context("creating a conversation")?;
            if i < 3 && plan.owners * plan.customers_per_owner < 200 {
                for (side, text) in
                    [(Side::Customer, "Hi! Is my order on its way?"), (Side::Owner, "Yes — it ships today.")]
                {
                    let (sender_id, sender_name) = match side {
                        Side::Owner => (owner.id.to_hex(), owner.name.clone()),
                        Side::Customer => (c.id.to_hex(), c.name.clone()),
                    };
                    let m = NewMessage { sender_name, ..fixtures::message(conv.id, side, &sender_id, text) };
                    store
                        .append_message(m)
                        .await
                        .context("adding a demo message")?
                        .context("the demo conversation refused a message from its participant")?;
                }
            }
            customers_json.push(json!({
                "id": c.id.to_hex(), "name": c.name, "token": token, "conversationId": conv.id.to_hex(),
            }));
            bar.inc(1);
        }
        owners_json.push(json!({
            "id": owner.id.to_hex(), "name": owner.name, "token": mint_hs256(secret, &owner_p, ttl)?,
            "customers": customers_json,
        }));
    }
    bar.finish_and_clear();
    let out = json!({ "baseUrl": plan.base_url, "owners": owners_json });
    if let Some(path) = &plan.tokens_out {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(out)
}

/// The human-readable summary with ready-to-paste curl lines.
pub fn summary(out: &serde_json::Value, plan: &SeedPlan) -> String {
    let base = &plan.base_url;
    let owner = &out["owners"][0];
    let no_customer = serde_json::Value::Null;
    let customers = owner["customers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let customer = customers.iter().find(|c| !c["conversationId"].is_null()).unwrap_or(&no_customer);
    let ot = owner["token"].as_str().unwrap_or_default();
    let mut s = format!(
        "Seeded {} business owner(s) with {} customer(s) each.\n\n\
         Business owner {} ({})\n  OWNER_TOKEN={ot}\n",
        plan.owners,
        plan.customers_per_owner,
        owner["name"].as_str().unwrap_or_default(),
        owner["id"].as_str().unwrap_or_default(),
    );
    s += &format!(
        "\nWeb console, one click to sign in (demo links: the token is in the link, so share them only for demos):\n  \
         owner     {:<28} {base}/#token={ot}\n",
        owner["name"].as_str().unwrap_or_default()
    );
    for c in customers.iter().take(6) {
        let name = c["name"].as_str().unwrap_or_default();
        let name =
            if c["conversationId"].is_null() { format!("{name} (no conversation yet)") } else { name.to_owned() };
        s += &format!("  customer  {name:<28} {base}/#token={}\n", c["token"].as_str().unwrap_or_default());
    }
    s += "\n";
    if customer.is_object() {
        let ct = customer["token"].as_str().unwrap_or_default();
        let conv = customer["conversationId"].as_str().unwrap_or_default();
        s += &format!(
            "Customer {} ({})\n  CUSTOMER_TOKEN={ct}\n  conversation {conv}\n\n\
             Try it (paste into a shell):\n\
             curl -s {base}/api/messages/conversations -H \"Authorization: Bearer {ot}\"\n\
             curl -s {base}/api/messages/customers -H \"Authorization: Bearer {ot}\"\n\
             curl -s {base}/api/messages/conversations/{conv} -H \"Authorization: Bearer {ct}\"\n\
             curl -s -X POST {base}/api/messages/send -H \"Authorization: Bearer {ct}\" -H 'Content-Type: application/json' \
             -d '{{\"conversationId\":\"{conv}\",\"content\":\"Hello from curl\"}}'\n",
            customer["name"].as_str().unwrap_or_default(),
            customer["id"].as_str().unwrap_or_default(),
        );
    }
    if let Some(p) = &plan.tokens_out {
        s += &format!("\nAll tokens written to {}\n", p.display());
    }
    s
}
