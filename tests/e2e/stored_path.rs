//! What a stored send costs the database, counted by the database server
//! itself (`serverStatus.opcounters` of the cluster's own server, with the
//! `api`'s background pollers off): once the account and the conversation's
//! participants are cached, a REST send is one `findAndModify` (the `seq`,
//! with the access check in its filter) and one `insert`, and no read. Also: a retried `clientMessageId` answers the stored
//! message and leaves no gap for the next send, and a send to a conversation
//! blocked after the participants were cached is refused with 403.
//! Runs on a `TestCluster` (real MongoDB-compatible server, Redis, processes).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::business;
use crate::common::cluster::TestCluster;
use crate::common::sio::SioClient;
use serde_json::{Value, json};

/// The database server's own operation counters (`serverStatus.opcounters`:
/// `insert`, `query`, `update`, `delete`, `getmore`, `command`; a
/// `findAndModify` counts as a `command`, as do the drivers' heartbeats).
async fn opcounters(db: &mongodb::Database) -> BTreeMap<String, f64> {
    let status = db.run_command(mongodb::bson::doc! {"serverStatus": 1}).await.expect("serverStatus");
    let counters = status.get_document("opcounters").expect("opcounters");
    counters.iter().map(|(k, v)| (k.clone(), v.as_i64().or(v.as_i32().map(i64::from)).unwrap_or(0) as f64)).collect()
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

async fn send(http: &reqwest::Client, api: &str, token: &str, body: Value) -> (u16, Value) {
    let r = http.post(format!("{api}/api/messages/send")).bearer_auth(token).json(&body).send().await.expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rest_send_is_two_database_commands_and_a_retry_leaves_no_gap() {
    // Only the requests touch the database: no webhook worker, no legacy adopter.
    let quiet = [("OMNIBIZ_WEBHOOK_WORKER", "false"), ("OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS", "0")];
    let cluster = TestCluster::start(1, 1, &quiet).await;
    let server = mongodb::Client::with_uri_str(cluster.mongo_uri()).await.expect("client").database("admin");
    let store = cluster.store().await;
    let (api, gw) = (cluster.api_urls()[0].clone(), cluster.gateway_urls()[0].clone());
    let http = reqwest::Client::new();
    let b = business(&store, "Trips", 1).await;
    let conv = crate::common::cluster::open_over_http(&api, &b.owner_token, &b.customers[0].id.to_hex()).await;
    let mut cust = SioClient::connect(&gw, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(cust.call("join_conversation", json!(conv)).await["ok"], true);

    // The first send reads the account and the conversation; later ones do not.
    let (status, _) = send(&http, &api, &b.owner_token, json!({"conversationId": conv, "content": "warm"})).await;
    assert_eq!(status, 201);
    assert_eq!(cust.expect("message_received").await["seq"], 1);
    let before = opcounters(&server).await;
    assert!(before.get("insert").copied().unwrap_or(0.0) >= 1.0, "the server counts: {before:?}");
    for i in 0..10 {
        let body = json!({"conversationId": conv, "content": format!("m{i}"), "clientMessageId": format!("trip-{i}")});
        let (status, r) = send(&http, &api, &b.owner_token, body).await;
        assert_eq!(status, 201, "{r}");
        assert_eq!(r["message"]["seq"], i + 2, "{r}");
    }
    let after = opcounters(&server).await;
    let d = |name| delta(&before, &after, name);
    assert_eq!(d("insert"), 10.0, "one insert per send: {before:?} → {after:?}");
    assert_eq!((d("query"), d("update"), d("getmore")), (0.0, 0.0, 0.0), "no read: {before:?} → {after:?}");
    // Ten findAndModify, one serverStatus (this read), and at most a few heartbeats.
    assert!((11.0..=15.0).contains(&d("command")), "one findAndModify per send: {before:?} → {after:?}");
    for i in 0..10 {
        let m = cust.expect("message_received").await;
        assert_eq!((m["seq"].as_i64(), m["content"].as_str()), (Some(i + 2), Some(format!("m{i}").as_str())));
    }

    // A retry: the stored message, 200, nothing delivered twice, no gap after it.
    let body = json!({"conversationId": conv, "content": "m9", "clientMessageId": "trip-9"});
    let (status, r) = send(&http, &api, &b.owner_token, body).await;
    assert_eq!((status, &r["message"]["seq"]), (200, &json!(11)), "{r}");
    let (status, r) = send(&http, &api, &b.owner_token, json!({"conversationId": conv, "content": "next"})).await;
    assert_eq!((status, &r["message"]["seq"]), (201, &json!(12)), "the retry took no seq: {r}");
    let m = cust.expect("message_received").await;
    assert_eq!((m["seq"].as_i64(), m["content"].as_str()), (Some(12), Some("next")), "at once, not after a gap wait");
    let r: Value = http
        .get(format!("{api}/api/messages/conversations"))
        .bearer_auth(&b.customer_tokens[0])
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let listed = &r["conversations"][0];
    assert_eq!(
        (listed["lastSeq"].as_i64(), listed["unreadCount"].as_i64()),
        (Some(12), Some(12)),
        "unread for the customer: {listed}"
    );

    // Blocked after the participants were cached: the store's check refuses it.
    let r = http
        .patch(format!("{api}/api/messages/conversations/{conv}"))
        .bearer_auth(&b.owner_token)
        .json(&json!({"status": "blocked"}))
        .send()
        .await
        .expect("block");
    assert!(r.status().is_success(), "{}", r.status());
    let (status, r) = send(&http, &api, &b.customer_tokens[0], json!({"conversationId": conv, "content": "x"})).await;
    assert_eq!((status, r["code"].as_str()), (403, Some("FORBIDDEN")), "{r}");
    // Another business's owner: not found, whatever the cache holds.
    let other = business(&store, "Elsewhere", 0).await;
    let (status, r) = send(&http, &api, &other.owner_token, json!({"conversationId": conv, "content": "x"})).await;
    assert_eq!((status, r["code"].as_str()), (404, Some("NOT_FOUND")), "{r}");
    assert!(
        cust.try_expect("message_received", Duration::from_millis(300)).await.is_none(),
        "nothing refused went out"
    );
}
