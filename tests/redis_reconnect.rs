//! Redis drops every pub/sub connection (a restart or failover): the
//! gateway resubscribes by itself, and its live sockets get what was
//! published while it was away, fetched from the store — once. `CLIENT KILL TYPE pubsub` hits every
//! subscriber on the server, so this lives in its own test binary: cargo
//! runs test binaries one at a time, and no other test's gateways share
//! the Redis while it runs.

mod common;

use std::time::Duration;

use common::sio::SioClient;
use common::{business, open};
use fred::interfaces::ClientLike as _;
use omnibiz_shared::domain::Side;
use omnibiz_shared::store::NewMessage;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_come_back_after_redis_drops_the_connection() {
    let (api, gw) = common::api_and_gateway("resub").await;
    let b = business(&api.store, "Resub", 1).await;
    let conv = open(&api, &b, 0).await;
    let channel = format!("omnibiz:{{conv:{conv}}}");
    let mut cust = SioClient::connect(&gw.base, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(cust.call("join_conversation", json!(conv)).await["ok"], true);
    assert_eq!(common::numsub(&channel).await, 1);
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
    };
    api.store.append_message(missed).await.expect("append");
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "not published, not delivered (yet)");
    // Kill every pub/sub connection, as a Redis restart or failover would.
    let admin =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&common::redis_url()).expect("url"))
            .build()
            .expect("client");
    admin.init().await.expect("connect");
    let _: i64 = admin.custom(fred::cmd!("CLIENT"), vec!["KILL", "TYPE", "pubsub"]).await.expect("client kill");
    let _ = admin.quit().await;
    let back =
        common::eventually(100, Duration::from_millis(100), || async { common::numsub(&channel).await == 1 }).await;
    assert!(back, "the gateway resubscribed by itself");
    let got = cust.expect("message_received").await;
    assert_eq!(got["content"], "stored while Redis was away", "resynced to the live socket, no rejoin");
    assert_eq!(got["seq"], 1);
    api.send(&b.owner_token, &conv, "after the reconnect").await;
    let live = cust.expect("message_received").await;
    assert_eq!((live["content"].clone(), live["seq"].clone()), (json!("after the reconnect"), json!(2)));
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "each message exactly once");
    cust.disconnect();
    gw.stop().await;
    api.finish().await;
}
