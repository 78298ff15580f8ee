//! Bounded latency under overload: with the stored path saturated, sends
//! are refused at once and clearly — REST 503 `OVERLOADED` with
//! `Retry-After`, a socket ack `{ok:false, code:"OVERLOADED",
//! retryAfterMs}` — before anything is stored, and a retry with the same
//! `clientMessageId` stores the message exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use omnibiz::app::Target;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, settings, spawn_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_store_refuses_early_and_retries_store_once() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "unused");
    // One send at a time, and no waiting for a turn: a burst must overflow.
    s.send_concurrency = 1;
    s.send_queue_ms = 1;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, Arc::clone(&dir)).await;
    let b = business(&app.store, "Busy", 1).await;
    let conv = open(&app, &b, 0).await;

    // 40 REST sends at once.
    let send = |i: usize| {
        let (http, url, token, conv) =
            (app.http.clone(), app.url("/api/messages/send"), b.customer_tokens[0].clone(), conv.clone());
        async move {
            let body = json!({"conversationId": conv, "content": format!("burst {i}"), "clientMessageId": format!("burst-{i}")});
            let r = http.post(url).bearer_auth(token).json(&body).send().await.expect("send");
            let (status, retry) = (r.status(), r.headers().get("retry-after").cloned());
            (i, status, retry, r.json::<Value>().await.expect("json"))
        }
    };
    let first = join_all((0..40).map(send)).await;
    let refused: Vec<usize> =
        first.iter().filter(|(_, s, ..)| *s == StatusCode::SERVICE_UNAVAILABLE).map(|r| r.0).collect();
    assert!(!refused.is_empty(), "a burst of 40 over one slot is refused in part");
    for (i, status, retry, body) in &first {
        match *status {
            StatusCode::CREATED => assert_eq!(body["success"], true),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    (body["success"].as_bool(), body["code"].as_str()),
                    (Some(false), Some("OVERLOADED")),
                    "{i}: {body}"
                );
                assert!(body["message"].as_str().is_some_and(|m| m.contains("clientMessageId")), "{body}");
                assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"), "Retry-After");
            }
            other => panic!("send {i}: {other} {body}"),
        }
    }
    // Retried one after another with the same clientMessageId: each stored once.
    for i in &refused {
        let (_, status, _, body) = send(*i).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Sockets: 12 sends at once from 12 connections; refusals are acks that say so.
    let mut clients = Vec::new();
    for _ in 0..12 {
        let mut c = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("connect");
        assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
        clients.push(c);
    }
    let conv_ref = conv.as_str();
    let acks = join_all(clients.iter_mut().enumerate().map(|(i, c)| async move {
        let ack = c
            .call(
                "send_message",
                json!({"conversationId": conv_ref, "message": format!("socket {i}"), "clientMessageId": format!("socket-{i}")}),
            )
            .await;
        (i, ack)
    }))
    .await;
    let mut retry = Vec::new();
    for (i, ack) in acks {
        if ack["ok"] == true {
            continue;
        }
        assert_eq!(ack["code"], "OVERLOADED", "{ack}");
        assert!(ack["retryAfterMs"].as_u64().is_some_and(|ms| ms >= 1), "{ack}");
        retry.push(i);
    }
    assert!(!retry.is_empty(), "12 sends at once over one slot are refused in part");
    for i in retry {
        let ack = clients[i]
            .call("send_message", json!({"conversationId": conv, "message": format!("socket {i}"), "clientMessageId": format!("socket-{i}")}))
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    // Nothing lost, nothing twice.
    let (_, history) = app.get(&format!("/api/messages/conversations/{conv}?limit=100"), &b.owner_token).await;
    let mut seen = HashMap::<String, usize>::new();
    for m in history["messages"].as_array().expect("messages") {
        *seen.entry(m["clientMessageId"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    for id in (0..40).map(|i| format!("burst-{i}")).chain((0..12).map(|i| format!("socket-{i}"))) {
        assert_eq!(seen.get(&id), Some(&1), "{id} stored once");
    }
    app.finish().await;
}
