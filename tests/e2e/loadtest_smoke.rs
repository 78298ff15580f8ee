//! Keeps the load generator from rotting: a few hundred messages through
//! `omnibiz serve` with its fanout scenario, and zero losses.

use std::time::Duration;

use crate::common::{Backend, TestApp, business, open, spawn_app};
use omnibiz_loadtest::fanout::{self, Plan, Sender};
use omnibiz_loadtest::tokens::Pair;

/// A business with `n` customers, each in a conversation with it: the load generator's pairs.
async fn conversations(app: &TestApp, name: &str, n: usize) -> Vec<Pair> {
    let b = business(&app.store, name, n).await;
    let mut pairs = Vec::new();
    for i in 0..n {
        let conversation = open(app, &b, i).await;
        pairs.push(Pair { owner: b.owner_token.clone(), customer: b.customer_tokens[i].clone(), conversation });
    }
    pairs
}

/// Socket senders and receivers on `gateway`, 40 msgs/s for 2 s, this process's CPU.
fn socket_plan(gateway: &TestApp, pairs: usize) -> Plan {
    let ws = gateway.base.replacen("http", "ws", 1);
    Plan {
        receivers_url: ws.clone(),
        senders_url: ws,
        pairs,
        rate: 40.0,
        duration: Duration::from_secs(2),
        pids: vec![std::process::id()],
        db_pids: Vec::new(),
        db_uri: None,
        sender: Sender::Socket,
        room: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_serve_loses_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    let pairs = conversations(&app, "Smoke", 5).await;
    let plan = Plan { rate: 100.0, duration: Duration::from_secs(3), ..socket_plan(&app, 5) };
    let r = fanout::run(&pairs, &plan).await.expect("fanout");
    let sent = r["sent"].as_u64().expect("sent");
    assert!(sent >= 250, "{r}");
    assert_eq!(r["delivered"].as_u64(), Some(sent), "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["latency_ms"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{r}");
    assert!(r.get("database_cpu_us_per_message").is_none(), "no database PIDs given: {r}");
    // The same path over REST; the store runs in this process (SQLite), so
    // its CPU per message is this process's.
    let plan = Plan { rate: 50.0, sender: Sender::Rest(app.base.clone()), db_pids: vec![std::process::id()], ..plan };
    let r = fanout::run(&pairs, &plan).await.expect("rest-send");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert!(r["database_cpu_us_per_message"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    // One room, twenty receivers: every message reaches each of them once.
    let plan = Plan { rate: 20.0, sender: Sender::Socket, db_pids: Vec::new(), room: 20, ..plan };
    let r = fanout::run(&pairs, &plan).await.expect("room");
    let sent = r["sent"].as_u64().expect("sent");
    assert!(sent >= 50, "{r}");
    assert_eq!((r["receivers"].as_u64(), r["delivered"].as_u64()), (Some(20), Some(sent * 20)), "{r}");
    assert_eq!((r["lost"].as_u64(), r["duplicates"].as_u64()), (Some(0), Some(0)), "{r}");
    app.finish().await;
}

/// The database's commands per stored message, read from the real server's
/// own counters around a fanout through an app on MongoDB. Other tests use
/// the same server meanwhile and only add to its counters, so the figures
/// are checked from below: every send takes its `seq` with one
/// `findAndModify` and is stored by an insert (alone or in a group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_counts_the_database_commands_per_message() {
    let (api, gw) = crate::common::api_and_gateway("counted").await;
    let pairs = conversations(&api, "Counted", 3).await;
    let plan = Plan { db_uri: Some(crate::common::mongo_uri()), ..socket_plan(&gw, 3) };
    let r = fanout::run(&pairs, &plan).await.expect("fanout");
    assert_eq!((r["lost"].as_u64(), r["errors"].as_u64()), (Some(0), Some(0)), "{r}");
    let c = &r["database_commands_per_message"];
    let per = |name: &str| c[name].as_f64().unwrap_or(0.0);
    assert!(per("findAndModify") >= 0.99, "one seq per send: {c}");
    assert!(per("insert") > 0.0, "{c}");
    assert!(per("total") >= per("findAndModify") + per("insert") - 0.01, "{c}");
    gw.stop().await;
    api.finish().await;
}

/// The stored path's ceiling scenario against the real MongoDB-compatible
/// server: inserts happen, none fail, and the scratch collection is gone after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_insert_measures_the_database_and_cleans_up() {
    use omnibiz_loadtest::raw_insert;
    let database = format!("omnibiz_raw_smoke_{}", std::process::id());
    // The scenario copies the indexes our store creates, as a server would
    // have made them on this database.
    let store =
        omnibiz_store::mongo::MongoStore::connect(&crate::common::mongo_uri(), Some(&database)).await.expect("store");
    store.ensure_indexes().await.expect("indexes");
    let plan = raw_insert::Plan {
        uri: crate::common::mongo_uri(),
        database: database.clone(),
        concurrency: 4,
        duration: Duration::from_secs(1),
        conversations: 3,
        // The server is a separate process whose PID the test does not
        // know; this process's CPU (the driver's) exercises the same sums.
        pids: vec![std::process::id()],
    };
    let r = raw_insert::run(&plan).await.expect("raw-insert");
    assert!(r["inserted"].as_u64().is_some_and(|n| n >= 20), "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["inserts_per_sec"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    assert!(r["latency_ms"]["p99"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    assert!(r["send_pairs"]["pairs"].as_u64().is_some_and(|n| n >= 10), "{r}");
    assert_eq!(r["send_pairs"]["errors"], 0, "{r}");
    assert!(r["server_cpu_us_per_insert"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    assert!(r["send_pairs"]["server_cpu_us_per_pair"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    let client = mongodb::Client::with_uri_str(crate::common::mongo_uri()).await.expect("client");
    let db = client.database(&database);
    let left = db.list_collection_names().await.expect("collections");
    assert!(left.iter().all(|c| !c.starts_with("raw_insert")), "{left:?}");
    db.drop().await.expect("drop");
}
