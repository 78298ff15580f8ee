//! Emoji reactions across an `api` and two gateways: live events on every
//! gateway, REST and socket doors, the limits, and that a reaction is not a
//! message.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::business;
use crate::common::cluster::{TestCluster, open_over_http};
use crate::common::sio::SioClient;

/// `%XX` for every byte: an emoji in a URL path.
fn encoded(emoji: &str) -> String {
    emoji.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_reach_every_gateway_and_are_not_messages() {
    let cluster = TestCluster::start(1, 2, &[]).await;
    let store = cluster.store().await;
    let (api, gws) = (cluster.api_urls()[0].clone(), cluster.gateway_urls());
    let b = business(&store, "Reacts", 1).await;
    let conv = open_over_http(&api, &b.owner_token, &b.customers[0].id.to_hex()).await;
    let http = reqwest::Client::new();
    let sent: Value = http
        .post(format!("{api}/api/messages/send"))
        .bearer_auth(&b.customer_tokens[0])
        .json(&json!({"conversationId": conv, "content": "is it in stock?"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let mid = sent["message"]["id"].as_str().expect("id").to_owned();
    let list = |tok: String| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let v: Value = http
                .get(format!("{api}/api/messages/conversations"))
                .bearer_auth(tok)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            v["conversations"][0].clone()
        }
    };
    let before = list(b.owner_token.clone()).await;

    let mut customer = SioClient::connect(&gws[0], Some(&b.customer_tokens[0])).await.expect("customer");
    let mut owner = SioClient::connect(&gws[1], Some(&b.owner_token)).await.expect("owner");
    for c in [&mut customer, &mut owner] {
        assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
    }

    // The owner reacts on gateway 2; the customer on gateway 1 hears it.
    let ack = owner.call("add_reaction", json!({"messageId": mid, "emoji": "👍"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["reactions"], json!([{"emoji": "👍", "count": 1, "reactedBy": [b.owner.id.to_hex()]}]));
    let heard = customer.try_expect("reaction_added", Duration::from_secs(5)).await.expect("reaction_added");
    assert_eq!((heard["emoji"].as_str(), heard["messageId"].as_str()), (Some("👍"), Some(mid.as_str())), "{heard}");
    assert_eq!(heard["userRole"], "business_owner");
    // The reactor's own sockets hear it too (other tabs and devices).
    assert_eq!(owner.expect("reaction_added").await["userRole"], "business_owner");

    // The customer over REST (the emoji URL-encoded); the owner's socket hears it.
    let put = http
        .put(format!("{api}/api/messages/{mid}/reactions/{}", encoded("👍")))
        .bearer_auth(&b.customer_tokens[0])
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let body: Value = put.json().await.expect("json");
    assert_eq!(body["message"]["reactions"][0]["count"], 2, "{body}");
    assert_eq!(
        owner.try_expect("reaction_added", Duration::from_secs(5)).await.expect("heard")["userRole"],
        "customer"
    );
    // Again is a no-op, and nobody hears anything.
    let again = http
        .put(format!("{api}/api/messages/{mid}/reactions/{}", encoded("👍")))
        .bearer_auth(&b.customer_tokens[0])
        .send()
        .await
        .expect("put");
    assert_eq!(again.status(), 200);
    assert!(owner.try_expect("reaction_added", Duration::from_millis(700)).await.is_none(), "no event for a no-op");

    // Taking one back is heard on the other gateway.
    let del = http
        .delete(format!("{api}/api/messages/{mid}/reactions/{}", encoded("👍")))
        .bearer_auth(&b.owner_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 200);
    let heard = customer.try_expect("reaction_removed", Duration::from_secs(5)).await.expect("reaction_removed");
    assert_eq!(heard["reactions"], json!([{"emoji": "👍", "count": 1, "reactedBy": [b.customers[0].id.to_hex()]}]));

    // Text is not an emoji; a stranger cannot react; twenty different emoji at most.
    let ack = customer.call("add_reaction", json!({"messageId": mid, "emoji": "lol"})).await;
    assert_eq!(ack["code"], "VALIDATION_ERROR", "{ack}");
    let other = business(&store, "Stranger", 1).await;
    let r = http
        .put(format!("{api}/api/messages/{mid}/reactions/{}", encoded("👍")))
        .bearer_auth(&other.customer_tokens[0])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 404);
    let many = [
        "😀", "😂", "😍", "🤔", "😮", "😢", "😡", "🙏", "🔥", "🎉", "💯", "👏", "🙌", "👀", "✅", "❌", "⭐", "💡",
        "🚀",
    ];
    for e in many {
        let ack = owner.call("add_reaction", json!({"messageId": mid, "emoji": e})).await;
        assert_eq!(ack["ok"], true, "{e}: {ack}");
    }
    let ack = owner.call("add_reaction", json!({"messageId": mid, "emoji": "🍕"})).await;
    assert_eq!(ack["code"], "VALIDATION_ERROR", "a 21st different emoji: {ack}");
    let ack = customer.call("add_reaction", json!({"messageId": mid, "emoji": "🚀"})).await;
    assert_eq!(ack["ok"], true, "one already there is fine: {ack}");

    // Not a message: the preview, unread count and seq did not move.
    let after = list(b.owner_token.clone()).await;
    for k in ["lastMessage", "unreadCount", "lastSeq", "lastMessageTime"] {
        assert_eq!(after[k], before[k], "{k}");
    }
}
