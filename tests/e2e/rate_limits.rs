//! Per-principal limits on every door: each REST route that takes a token
//! and each socket event answers 429 / `RATE_LIMITED` with when to retry
//! once its bucket is empty; REST and socket sends share one bucket; and a
//! principal holds at most the configured number of sockets across every
//! gateway of a cluster.

use std::sync::Arc;
use std::time::Duration;

use omnibiz::app::Target;
use omnibiz_domain::ObjectId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::cluster::TestCluster;
use crate::common::sio::SioClient;
use crate::common::{Backend, TestApp, business, open, settings, spawn_with};

/// Every rate at 1/s (bursts of 2): the third call of a kind is refused.
async fn tight() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "rate_limits");
    (s.send_rate, s.write_rate, s.receipt_rate, s.read_rate) = (1, 1, 1, 1);
    (s.search_rate, s.upload_rate, s.typing_rate, s.join_rate) = (1, 1, 1, 1);
    spawn_with(Backend::Sqlite, s, Target::Serve, dir).await
}

/// The operations of the served OpenAPI document that take a token, with
/// their path parameters filled in by fresh ids.
async fn authed_operations(app: &TestApp) -> Vec<(Method, String)> {
    let doc: Value = app.http.get(app.url("/api/openapi.json")).send().await.expect("doc").json().await.expect("json");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            // Those signed in with a bearer token (not the mail provider's
            // inbound webhook or an email's unsubscribe link, which carry signed tokens of their own).
            let bearer = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !bearer {
                continue;
            }
            assert!(op["responses"].get("429").is_some(), "{method} {path} documents 429");
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { ObjectId::new().to_hex() } else { seg.to_owned() })
                .collect::<Vec<_>>()
                .join("/");
            let query = if path.ends_with("/search") { "?q=hello" } else { "" };
            ops.push((method.to_uppercase().parse().expect("method"), format!("{concrete}{query}")));
        }
    }
    ops
}

#[tokio::test]
async fn every_rest_route_answers_429_with_retry_after_once_its_bucket_is_empty() {
    let app = tight().await;
    let ops = authed_operations(&app).await;
    assert!(ops.len() >= 25, "the document lists the API: {ops:?}");
    for (i, (method, path)) in ops.iter().enumerate() {
        // A principal of its own per route: its buckets are full at the start.
        let b = business(&app.store, &format!("Limited{i}"), 0).await;
        let mut statuses = Vec::new();
        let mut refused = None;
        for _ in 0..4 {
            // Revoking one's own sessions would end the test's token: aim at nobody.
            let body =
                if path.ends_with("/revoke") { json!({"customerId": ObjectId::new().to_hex()}) } else { json!({}) };
            let res = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(&b.owner_token)
                .json(&body)
                .send()
                .await
                .expect("request");
            statuses.push(res.status().as_u16());
            if res.status() == 429 {
                let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                refused = Some((retry, res.json::<Value>().await.expect("json")));
                break;
            }
        }
        let (retry, body) = refused.unwrap_or_else(|| panic!("{method} {path}: no 429 in {statuses:?}"));
        assert_eq!(statuses.len(), 3, "{method} {path}: a burst of 2 passes, the third is refused: {statuses:?}");
        assert_eq!(body["code"], "RATE_LIMITED", "{method} {path}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(retry.as_deref(), Some("1"), "{method} {path}: Retry-After in whole seconds");
    }
    app.finish().await;
}

/// Builds an event's payload from a conversation id and a message id.
type Payload = fn(&str, &str) -> Value;

#[tokio::test]
async fn every_socket_event_is_limited_and_rest_and_socket_sends_share_a_bucket() {
    let app = tight().await;
    let b = business(&app.store, "Sockets", 1).await;
    let conv = open(&app, &b, 0).await;
    let mid = ObjectId::new().to_hex();
    let events: [(&str, Payload); 9] = [
        ("join_conversation", |c, _| json!(c)),
        ("leave_conversation", |c, _| json!(c)),
        ("typing_start", |c, _| json!(c)),
        ("typing_stop", |c, _| json!(c)),
        ("mark_read", |c, _| json!({"conversationId": c, "seq": 1})),
        ("message_delivered", |c, m| json!({"conversationId": c, "messageId": m})),
        ("edit_message", |_, m| json!({"messageId": m, "content": "x"})),
        ("delete_message", |_, m| json!({"messageId": m})),
        ("refresh_token", |_, _| json!({"token": "x"})),
    ];
    for (event, data) in events {
        // A fresh customer per event: its buckets are full at the start.
        let c = business(&app.store, &format!("Ev{event}"), 1).await;
        let data = data(&open(&app, &c, 0).await, &mid);
        let mut s = SioClient::connect(&app.base, Some(&c.customer_tokens[0])).await.expect("connect");
        let mut acks = Vec::new();
        for _ in 0..3 {
            acks.push(s.call(event, data.clone()).await);
        }
        assert_ne!(acks[1]["code"], "RATE_LIMITED", "{event}: a burst of 2 passes: {acks:?}");
        assert_eq!(acks[2]["ok"], false, "{event}: {acks:?}");
        assert_eq!(acks[2]["code"], "RATE_LIMITED", "{event}: {acks:?}");
        assert!(acks[2]["retryAfterMs"].as_u64().is_some_and(|ms| (1..=1000).contains(&ms)), "{event}: {acks:?}");
        s.disconnect();
    }

    // Two REST sends empty the send bucket; the socket's send is refused,
    // with its clientMessageId on the message_error.
    for i in 0..2 {
        let (status, body) = app.send(&b.customer_tokens[0], &conv, &format!("rest {i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut s = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("connect");
    let ack =
        s.call("send_message", json!({"conversationId": conv, "content": "socket", "clientMessageId": "c-1"})).await;
    assert_eq!(ack["code"], "RATE_LIMITED", "{ack}");
    let told = s.expect("message_error").await;
    assert_eq!(told["clientMessageId"], "c-1", "{told}");
    assert_eq!(told["code"], "RATE_LIMITED", "{told}");
    let (status, _) = app.call(Method::GET, "/api/messages/me", Some(&b.customer_tokens[0]), None).await;
    assert_eq!(status, 200, "reads have a bucket of their own");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ack = s.call("send_message", json!({"conversationId": conv, "content": "later"})).await;
    assert_eq!(ack["ok"], true, "the bucket refills: {ack}");
    app.finish().await;
}

/// At most 2 sockets per principal across two gateways: the third is
/// refused wherever it connects, and a closed one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_holds_at_most_the_configured_sockets_across_gateways() {
    let cluster = TestCluster::start(1, 2, &[("OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL", "2")]).await;
    let store = cluster.store().await;
    let gws = cluster.gateway_urls();
    let b = business(&store, "Capped", 1).await;
    let tok = &b.customer_tokens[0];
    let first = SioClient::connect(&gws[0], Some(tok)).await.expect("first");
    let _second = SioClient::connect(&gws[1], Some(tok)).await.expect("second");
    for gw in &gws {
        let third = SioClient::connect(gw, Some(tok)).await;
        assert!(third.as_ref().is_err_and(|e| e.contains("already has 2 connections")), "{gw}: {:?}", third.err());
    }
    // Someone else is not affected.
    SioClient::connect(&gws[0], Some(&b.owner_token)).await.expect("the owner connects");
    first.disconnect();
    let mut admitted = false;
    for _ in 0..50 {
        if SioClient::connect(&gws[1], Some(tok)).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a closed socket makes room on another gateway");
}
