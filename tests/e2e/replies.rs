//! Replies that quote: the quote travels with the reply (REST and live),
//! follows the original's edits and deletion on later reads, stays inside
//! its conversation, and the original can be jumped to by `seq`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, settings, spawn_with};

async fn replies(backend: Backend) {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_replies_{}", bson::oid::ObjectId::new());
    let app = spawn_with(backend, settings(backend, dir.path(), &db), omnibiz::app::Target::Serve, dir).await;
    let b = business(&app.store, "Replies", 2).await;
    let conv = open(&app, &b, 0).await;
    let other = open(&app, &b, 1).await;
    let (_, first) = app.send(&b.customer_tokens[0], &conv, "Can I pay on delivery?").await;
    let first_id = first["message"]["id"].as_str().expect("id").to_owned();
    for i in 0..30 {
        app.send(&b.customer_tokens[0], &conv, &format!("filler {i}")).await;
    }
    let mut cust = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("customer");
    assert_eq!(cust.call("join_conversation", json!(conv)).await["ok"], true);

    // The owner replies over REST; the customer's socket gets the quote with the message.
    let (s, reply) = app
        .post(
            "/api/messages/send",
            &b.owner_token,
            json!({"conversationId": conv, "content": "Yes, cash or card.", "replyTo": first_id}),
        )
        .await;
    assert_eq!(s, 201, "{reply}");
    let quote = &reply["message"]["replyTo"];
    assert_eq!(quote["messageId"], first_id.as_str(), "{reply}");
    assert_eq!((quote["seq"].as_i64(), quote["excerpt"].as_str()), (Some(1), Some("Can I pay on delivery?")));
    assert_eq!(quote["senderId"], b.customers[0].id.to_hex().as_str());
    assert_eq!(quote["isDeleted"], false);
    let live = cust.expect("message_received").await;
    assert_eq!(live["replyTo"]["excerpt"], "Can I pay on delivery?", "{live}");

    // Over the socket too; a message of another conversation cannot be quoted.
    let ack = cust
        .call("send_message", json!({"conversationId": conv, "content": "Great", "replyTo": reply["message"]["id"]}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["replyTo"]["excerpt"], "Yes, cash or card.");
    let (_, elsewhere) = app.send(&b.customer_tokens[1], &other, "another conversation").await;
    let (s, body) = app
        .post(
            "/api/messages/send",
            &b.owner_token,
            json!({"conversationId": conv, "content": "x", "replyTo": elsewhere["message"]["id"]}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("replyTo")), "{body}");

    // The quote follows the original: edited, then deleted.
    let (s, _) = app
        .patch(
            &format!("/api/messages/{first_id}"),
            &b.customer_tokens[0],
            json!({"content": "Can I pay by card on delivery?"}),
        )
        .await;
    assert_eq!(s, 200);
    let quote_now = |page: &Value| {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["content"] == "Yes, cash or card.")
            .map(|m| m["replyTo"].clone())
    };
    let (_, page) = app.get(&format!("/api/messages/conversations/{conv}?limit=5"), &b.owner_token).await;
    assert_eq!(quote_now(&page).expect("the reply")["excerpt"], "Can I pay by card on delivery?", "{page}");
    let (s, _) =
        app.call(Method::DELETE, &format!("/api/messages/{first_id}"), Some(&b.customer_tokens[0]), None).await;
    assert_eq!(s, 200);
    let (_, page) = app.get(&format!("/api/messages/conversations/{conv}?limit=5"), &b.owner_token).await;
    let q = quote_now(&page).expect("the reply");
    assert_eq!(q["isDeleted"], true, "{q}");
    assert!(q.get("excerpt").is_none(), "nothing of a deleted original: {q}");

    // Jump to the original by its seq: a page around it.
    let (s, page) = app.get(&format!("/api/messages/conversations/{conv}?around=1&limit=10"), &b.owner_token).await;
    assert_eq!(s, 200, "{page}");
    let seqs: Vec<i64> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "seq 1 (the older half: none before it) and the newer half");
    let (_, page) = app.get(&format!("/api/messages/conversations/{conv}?around=20&limit=10"), &b.owner_token).await;
    let seqs: Vec<i64> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], true, "older ones exist");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_on_sqlite() {
    replies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_on_mongodb() {
    replies(Backend::Mongo).await;
}
