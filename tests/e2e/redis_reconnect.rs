//! Redis drops every pub/sub connection (a restart or failover): the
//! gateway resubscribes by itself, and its live sockets get what was
//! published while it was away, fetched from the store — once. Runs on a
//! `TestCluster` (its own Redis and MongoDB-compatible server, `api` and
//! `gateway` processes), so `CLIENT KILL TYPE pubsub` touches no other test.

use std::time::Duration;

use crate::common::cluster::TestCluster;
use crate::common::sio::SioClient;
use crate::common::{business, numsub_at};
use fred::interfaces::ClientLike as _;
use omnibiz_domain::Side;
use omnibiz_store::NewMessage;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_come_back_after_redis_drops_the_connection() {
    let cluster = TestCluster::start(1, 1, &[]).await;
    let store = cluster.store().await;
    let (api, gw, redis) = (cluster.api_urls()[0].clone(), cluster.gateway_urls()[0].clone(), cluster.redis_url());
    let http = reqwest::Client::new();
    let b = business(&store, "Resub", 1).await;
    let conv = crate::common::cluster::open_over_http(&api, &b.owner_token, &b.customers[0].id.to_hex()).await;
    let channel = format!("omnibiz:{{conv:{conv}}}");
    let mut cust = SioClient::connect(&gw, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(cust.call("join_conversation", json!(conv)).await["ok"], true);
    assert_eq!(numsub_at(&redis, &channel).await, 1);
    // A message stored but never published, as when its publish fell into
    // the outage: only a resync from the store can bring it.
    let missed = NewMessage {
        conversation_id: conv.parse().expect("conversation id"),
        sender_id: b.owner.id.to_hex(),
        sender_side: Side::Owner,
        sender_name: b.owner.name.clone(),
        content: "stored while Redis was away".into(),
        attachments: Vec::new(),
        client_message_id: None,
        created_at: chrono::Utc::now(),
        reply_to: None,
        acting_for: None,
        team_role: None,
        private: false,
        system: false,
    };
    store.append_message(missed).await.expect("append").expect("a participant's send is taken");
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "not published, not delivered (yet)");
    // Kill every pub/sub connection, as a Redis restart or failover would.
    let admin = fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&redis).expect("url"))
        .build()
        .expect("client");
    admin.init().await.expect("connect");
    let _: i64 = admin.custom(fred::cmd!("CLIENT"), vec!["KILL", "TYPE", "pubsub"]).await.expect("client kill");
    let _ = admin.quit().await;
    let back =
        crate::common::eventually(100, Duration::from_millis(100), || async { numsub_at(&redis, &channel).await == 1 })
            .await;
    assert!(back, "the gateway resubscribed by itself");
    let got = cust.expect("message_received").await;
    assert_eq!(got["content"], "stored while Redis was away", "resynced to the live socket, no rejoin");
    assert_eq!(got["seq"], 1);
    let r = http
        .post(format!("{api}/api/messages/send"))
        .bearer_auth(&b.owner_token)
        .json(&json!({"conversationId": conv, "content": "after the reconnect"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let live = cust.expect("message_received").await;
    assert_eq!((live["content"].clone(), live["seq"].clone()), (json!("after the reconnect"), json!(2)));
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "each message exactly once");
    cust.disconnect();
}
