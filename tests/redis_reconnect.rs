//! Redis drops every pub/sub connection (a restart or failover) and the
//! gateway resubscribes by itself. `CLIENT KILL TYPE pubsub` hits every
//! subscriber on the server, so this lives in its own test binary: cargo
//! runs test binaries one at a time, and no other test's gateways share
//! the Redis while it runs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sio::SioClient;
use common::{Backend, business, open, spawn_with};
use fred::interfaces::ClientLike as _;
use omnibiz::app::Target;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_come_back_after_redis_drops_the_connection() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_resub_{}", bson::oid::ObjectId::new());
    let s = common::settings(Backend::Mongo, dir.path(), &db);
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    let b = business(&api.store, "Resub", 1).await;
    let conv = open(&api, &b, 0).await;
    let channel = format!("omnibiz:{{conv:{conv}}}");
    let mut cust = SioClient::connect(&gw.base, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(cust.call("join_conversation", json!(conv)).await["ok"], true);
    assert_eq!(common::numsub(&channel).await, 1);
    // Kill every pub/sub connection, as a Redis restart or failover would.
    let admin =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&common::redis_url()).expect("url"))
            .build()
            .expect("client");
    admin.init().await.expect("connect");
    let _: i64 = admin.custom(fred::cmd!("CLIENT"), vec!["KILL", "TYPE", "pubsub"]).await.expect("client kill");
    let _ = admin.quit().await;
    let mut back = false;
    for _ in 0..100 {
        if common::numsub(&channel).await == 1 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the gateway resubscribed by itself");
    api.send(&b.owner_token, &conv, "after the reconnect").await;
    assert_eq!(cust.expect("message_received").await["content"], "after the reconnect");
    cust.disconnect();
    gw.stop().await;
    api.finish().await;
}
