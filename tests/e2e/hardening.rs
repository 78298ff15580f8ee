//! Smaller holes of the security review: the business's internal triage
//! (tags, priority) stays with the business, and a blocked customer can no
//! longer take part in the conversation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::sio::SioClient;
use crate::common::{Backend, assert_error, business, open, spawn_app};

/// Tags and priority appear in the owner's views and events only: the
/// customer's conversation list, conversation and `conversation_updated`
/// carry neither (nor the owner's unread count and the customer's own
/// contact details, which the owner's view of the event has).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_priority_stay_with_the_business() {
    let app = spawn_app(Backend::Sqlite).await;
    let b = business(&app.store, "Triage", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut owner = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("owner");
    let mut customer = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("customer");
    assert_eq!(customer.call("join_conversation", json!(conv)).await["ok"], true);
    let patch = json!({"tags": ["refund-risk", "vip"], "priority": "urgent"});
    let (s, body) = app.patch(&format!("/api/messages/conversations/{conv}"), &b.owner_token, patch).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["conversation"]["tags"], json!(["refund-risk", "vip"]));

    let seen_by_owner = owner.expect("conversation_updated").await;
    assert_eq!(seen_by_owner["tags"], json!(["refund-risk", "vip"]), "{seen_by_owner}");
    assert_eq!(seen_by_owner["priority"], "urgent");
    let seen_by_customer = customer.expect("conversation_updated").await;
    assert!(seen_by_customer.get("tags").is_none() && seen_by_customer.get("priority").is_none(), "{seen_by_customer}");
    assert_eq!(seen_by_customer["name"], "Triage Ltd", "the customer's view names the business: {seen_by_customer}");

    let (_, list) = app.get("/api/messages/conversations", &b.customer_tokens[0]).await;
    let (_, one) = app.get(&format!("/api/messages/conversations/{conv}"), &b.customer_tokens[0]).await;
    for v in [&list["conversations"][0], &one["conversation"]] {
        assert!(v.get("tags").is_none() && v.get("priority").is_none(), "{v}");
        assert_eq!(v["id"], conv.as_str());
    }
    let (_, list) = app.get("/api/messages/conversations", &b.owner_token).await;
    assert_eq!(list["conversations"][0]["priority"], "urgent", "the owner's list keeps them");
    app.finish().await;
}

/// Once the business blocks a conversation its customer cannot read it,
/// join it, type in it, edit or delete their messages, or send receipts
/// (403); a socket that had joined leaves the room; the owner still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_customer_can_no_longer_take_part() {
    let app = spawn_app(Backend::Sqlite).await;
    let b = business(&app.store, "Blocker", 1).await;
    let conv = open(&app, &b, 0).await;
    let tok = b.customer_tokens[0].clone();
    let (_, sent) = app.send(&tok, &conv, "my last word").await;
    let mid = sent["message"]["id"].as_str().expect("id").to_owned();
    let mut joined = SioClient::connect(&app.base, Some(&tok)).await.expect("customer");
    assert_eq!(joined.call("join_conversation", json!(conv)).await["ok"], true);

    let (s, body) =
        app.patch(&format!("/api/messages/conversations/{conv}"), &b.owner_token, json!({"status": "blocked"})).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let (s, body) = app.patch(&format!("/api/messages/{mid}"), &tok, json!({"content": "edited"})).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    let (s, body) = app.call(Method::DELETE, &format!("/api/messages/{mid}"), Some(&tok), None).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    let (s, body) = app.call(Method::POST, &format!("/api/messages/{mid}/read"), Some(&tok), None).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    let (s, body) = app.get(&format!("/api/messages/conversations/{conv}"), &tok).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    let (s, body) = app.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    assert_eq!(s, StatusCode::OK, "the owner still reads: {body}");

    let mut fresh = SioClient::connect(&app.base, Some(&tok)).await.expect("customer");
    let ack = fresh.call("join_conversation", json!(conv)).await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    for (event, data) in [
        ("mark_read", json!({"conversationId": conv, "seq": 1})),
        ("edit_message", json!({"messageId": mid, "content": "x"})),
        ("delete_message", json!({"messageId": mid})),
    ] {
        let ack = fresh.call(event, data).await;
        assert_eq!(ack["code"], "FORBIDDEN", "{event}: {ack}");
    }
    // The socket joined before the block leaves the room: its typing now goes through the check.
    let mut refused = false;
    for _ in 0..50 {
        if joined.call("typing_start", json!(conv)).await["code"] == "FORBIDDEN" {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "typing in a blocked conversation is refused once the room is left");
    app.finish().await;
}
