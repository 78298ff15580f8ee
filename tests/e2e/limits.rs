//! Abuse limits, each with a clear error: conversations joined per socket,
//! connection attempts per account, the largest socket message, and the
//! clock-skew leeway on tokens.

use std::sync::Arc;
use std::time::Duration;

use crate::common::sio::SioClient;
use crate::common::{Backend, SECRET, TestApp, business, open, settings, spawn_with};
use omnibiz::app::Target;
use serde_json::json;

async fn app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "limits");
    s.max_rooms_per_socket = 3;
    s.connect_rate = 2;
    s.max_payload_bytes = 4096;
    s.jwt_leeway_secs = 30;
    spawn_with(Backend::Sqlite, s, Target::Serve, dir).await
}

#[tokio::test]
async fn a_socket_joins_at_most_the_configured_number_of_conversations() {
    let app = app().await;
    let b = business(&app.store, "Rooms", 4).await;
    let mut convs = Vec::new();
    for i in 0..4 {
        convs.push(open(&app, &b, i).await);
    }
    let mut s = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("connect");
    for c in &convs[..3] {
        assert_eq!(s.call("join_conversation", json!(c)).await["ok"], true);
    }
    let refused = s.call("join_conversation", json!(convs[3])).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["code"], "TOO_MANY_ROOMS", "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("at most 3")), "{refused}");
    // Joining one already joined is no new room; leaving makes space.
    assert_eq!(s.call("join_conversation", json!(convs[0])).await["ok"], true);
    assert_eq!(s.call("leave_conversation", json!(convs[0])).await["ok"], true);
    assert_eq!(s.call("join_conversation", json!(convs[3])).await["ok"], true);
    s.disconnect();
    app.finish().await;
}

#[tokio::test]
async fn connection_attempts_per_account_are_rate_limited() {
    let app = app().await;
    let b = business(&app.store, "Storm", 1).await;
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for _ in 0..12 {
        match SioClient::connect(&app.base, Some(&b.owner_token)).await {
            Ok(c) => held.push(c),
            Err(e) => refused.push(e),
        }
    }
    assert!(!refused.is_empty(), "12 attempts at once exceed 2/s with bursts of 4");
    assert!(refused.iter().all(|e| e.contains("too many connection attempts")), "{refused:?}");
    assert!(held.len() >= 4, "the burst is let through: {}", held.len());
    // Another account is not affected; the first gets in again after a pause.
    SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("another account");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("after a pause");
    app.finish().await;
}

#[tokio::test]
async fn a_socket_message_above_the_limit_closes_that_connection_only() {
    let app = app().await;
    let b = business(&app.store, "Big", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut ok = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("connect");
    let fits = "x".repeat(3000);
    let ack = ok.call("send_message", json!({"conversationId": conv, "message": fits})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let big = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("connect");
    big.emit("send_message", json!({"conversationId": conv, "message": "y".repeat(10_000)}));
    assert!(
        crate::common::eventually(50, Duration::from_millis(100), || async { big.is_closed() }).await,
        "a 10 KB message over a 4 KB limit closes the connection"
    );
    let ack = ok.call("send_message", json!({"conversationId": conv, "message": "others unaffected"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.finish().await;
}

#[tokio::test]
async fn tokens_get_the_configured_clock_skew_leeway() {
    let app = app().await;
    let b = business(&app.store, "Skew", 1).await;
    let now = chrono::Utc::now().timestamp();
    let token = |exp: i64| {
        let claims = json!({"id": b.owner.id.to_hex(), "role": "business_owner", "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("token")
    };
    let (status, body) = app.get("/api/messages/conversations", &token(now - 10)).await;
    assert_eq!(status, 200, "expired 10 s ago is within 30 s of skew: {body}");
    let (status, body) = app.get("/api/messages/conversations", &token(now - 120)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "TOKEN_EXPIRED", "{body}");
    app.finish().await;
}

#[tokio::test]
async fn new_connections_per_client_address_are_rate_limited() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "iplimit");
    s.connect_rate_per_ip = 2;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Flood", 8).await;
    let mut refused = Vec::new();
    let mut held = Vec::new();
    // Different accounts, one address: the per-account limit does not apply, the per-address one does.
    for t in b.customer_tokens.iter().chain(b.customer_tokens.iter()) {
        match SioClient::connect(&app.base, Some(t)).await {
            Ok(c) => held.push(c),
            Err(e) => refused.push(e),
        }
    }
    assert!(!refused.is_empty() && held.len() >= 4, "held {}, refused {refused:?}", held.len());
    assert!(refused.iter().all(|e| e.contains("429")), "{refused:?}");
    // Polling handshakes count too, and say why.
    let r = app.http.get(app.url("/socket.io/?EIO=4&transport=polling")).send().await.expect("poll");
    assert_eq!(r.status(), 429);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], "TOO_MANY_CONNECTIONS", "{body}");
    // Established sessions are not affected.
    let mut first = held.remove(0);
    assert_eq!(first.call("join_conversation", json!(open(&app, &b, 0).await)).await["ok"], true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("after a pause");
    app.finish().await;
}
