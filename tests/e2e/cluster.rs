//! Sharded pub/sub on a real 3-master Redis Cluster (started by
//! scripts/test.sh from Debian's redis-server): an API and two gateways.

use std::sync::Arc;

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, spawn_with};
use omnibiz::app::Target;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_pub_sub_on_a_redis_cluster() {
    let url = std::env::var("REDIS_CLUSTER_URL")
        .expect("REDIS_CLUSTER_URL is not set: run scripts/test.sh, which starts a 3-master Redis Cluster");
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_cluster_{}", bson::oid::ObjectId::new());
    let mut s = crate::common::settings(Backend::Mongo, dir.path(), &db);
    s.redis_url = Some(url.into());
    s.redis_sharded = true;
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw1 = spawn_with(Backend::Mongo, s.clone(), Target::Gateway, Arc::clone(&dir)).await;
    let gw2 = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    // Several conversations, so channels land on different shards.
    let b = business(&api.store, "Cluster", 6).await;
    let mut pairs = Vec::new();
    for i in 0..6 {
        let conv = open(&api, &b, i).await;
        let mut owner = SioClient::connect(&gw1.base, Some(&b.owner_token)).await.expect("owner");
        let mut cust = SioClient::connect(&gw2.base, Some(&b.customer_tokens[i])).await.expect("customer");
        assert_eq!(owner.call("join_conversation", json!(conv)).await["ok"], true);
        let ack = cust.call("join_conversation", json!(conv)).await;
        assert_eq!(ack["ok"], true, "{ack}");
        assert_eq!(ack["otherOnline"], true, "presence through the cluster");
        pairs.push((conv, owner, cust));
    }
    for (i, (conv, owner, cust)) in pairs.iter_mut().enumerate() {
        let (_, m) = api.send(&b.owner_token, conv, &format!("rest {i}")).await;
        assert_eq!(cust.expect("message_received").await["id"], m["message"]["id"]);
        assert_eq!(cust.expect("new_message_notification").await["conversationId"], conv.as_str());
        let ack = cust.call("send_message", json!({"conversationId": conv, "message": format!("socket {i}")})).await;
        assert_eq!(ack["ok"], true);
        assert_eq!(owner.expect("message_received").await["content"], format!("socket {i}"));
    }
    for (_, owner, cust) in pairs {
        owner.disconnect();
        cust.disconnect();
    }
    gw1.stop().await;
    gw2.stop().await;
    api.finish().await;
}
