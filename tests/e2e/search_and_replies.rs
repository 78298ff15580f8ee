//! Message search and quick replies over REST and Socket.IO, on both
//! stores: what each principal finds (tenant isolation, like the deny
//! matrix), phrase and prefix matching, snippets, paging; quick replies'
//! CRUD, who may use them, and sending one.

use crate::common::sio::SioClient;
use crate::common::{Backend, assert_error, business, open, settings, spawn_app, spawn_with};
use omnibiz::app::Target;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn marked(hit: &Value) -> Vec<String> {
    let snippet: Vec<char> = hit["snippet"].as_str().expect("snippet").chars().collect();
    hit["highlights"]
        .as_array()
        .expect("highlights")
        .iter()
        .map(|h| {
            let (s, e) = (h["start"].as_u64().expect("start") as usize, h["end"].as_u64().expect("end") as usize);
            snippet[s..e].iter().collect()
        })
        .collect()
}

async fn search_finds_only_your_own_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = business(&app.store, "Acme", 2).await;
    let b = business(&app.store, "Other", 1).await;
    let c0 = open(&app, &a, 0).await;
    let c1 = open(&app, &a, 1).await;
    let cb = open(&app, &b, 0).await;
    app.send(&a.customer_tokens[0], &c0, "Where is my parcel? Tracking KE-2231").await;
    app.send(&a.owner_token, &c0, "It left the warehouse this morning.").await;
    app.send(&a.customer_tokens[1], &c1, "Is the parcel insured?").await;
    app.send(&b.customer_tokens[0], &cb, "My parcel is late").await;
    let (_, deleted) = app.send(&a.customer_tokens[0], &c0, "parcel secret, please delete").await;
    let did = deleted["message"]["id"].as_str().expect("id").to_owned();
    let (s, _) = app.call(Method::DELETE, &format!("/api/messages/{did}"), Some(&a.customer_tokens[0]), None).await;
    assert_eq!(s, StatusCode::OK);

    let find = |token: &str, q: &str| {
        let (token, q) = (token.to_owned(), q.to_owned());
        let app = &app;
        async move {
            let url = format!("/api/messages/search?q={}", urlencode(&q));
            let (s, body) = app.get(&url, &token).await;
            assert_eq!(s, StatusCode::OK, "{body}");
            body
        }
    };
    // The owner: both of their customers' conversations, newest first; not the other business's.
    let r = find(&a.owner_token, "parcel").await;
    let contents: Vec<&str> = r["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|h| h["message"]["content"].as_str().expect("c"))
        .collect();
    assert_eq!(contents, vec!["Is the parcel insured?", "Where is my parcel? Tracking KE-2231"], "{r}");
    assert_eq!(r["results"][0]["conversationName"], "Acme Customer 1");
    assert_eq!(marked(&r["results"][0]), vec!["parcel"]);
    // A customer: only their own conversation.
    let r = find(&a.customer_tokens[1], "parcel").await;
    assert_eq!(r["results"].as_array().expect("results").len(), 1, "{r}");
    assert_eq!(r["results"][0]["conversationId"], c1.as_str());
    assert_eq!(r["results"][0]["conversationName"], "Acme Ltd");
    let r = find(&b.owner_token, "parcel").await;
    assert_eq!(r["results"].as_array().expect("results").len(), 1, "{r}");
    assert_eq!(r["results"][0]["message"]["content"], "My parcel is late");
    // Prefixes, phrases, every term; the deleted message is never found.
    let r = find(&a.owner_token, "ware").await;
    assert_eq!(r["results"][0]["message"]["content"], "It left the warehouse this morning.");
    assert_eq!(marked(&r["results"][0]), vec!["warehouse"]);
    let r = find(&a.owner_token, "\"left the warehouse\"").await;
    assert_eq!(r["results"].as_array().expect("results").len(), 1);
    assert_eq!(marked(&r["results"][0]), vec!["left the warehouse"]);
    assert_eq!(find(&a.owner_token, "\"the left\"").await["results"], json!([]));
    assert_eq!(find(&a.owner_token, "parcel insured").await["results"].as_array().expect("r").len(), 1);
    assert_eq!(find(&a.owner_token, "arcel").await["results"], json!([]), "word starts only");
    assert_eq!(find(&a.customer_tokens[0], "secret").await["results"], json!([]));
    let r = find(&a.owner_token, "KE-2231").await;
    assert_eq!(marked(&r["results"][0]), vec!["KE", "2231"]);
    assert_eq!(find(&a.owner_token, "!!!").await["results"], json!([]));

    // Paging: a cursor walks the rest, newest first, without repeats.
    for i in 0..7 {
        app.send(&a.owner_token, &c1, &format!("invoice number {i}")).await;
    }
    let (s, p1) = app.get("/api/messages/search?q=invoice&limit=4", &a.owner_token).await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    let cursor = p1["nextCursor"].as_str().expect("a next page").to_owned();
    let (_, p2) = app.get(&format!("/api/messages/search?q=invoice&limit=4&cursor={cursor}"), &a.owner_token).await;
    let all: Vec<String> = [&p1, &p2]
        .iter()
        .flat_map(|p| {
            p["results"].as_array().expect("r").iter().map(|h| h["message"]["content"].as_str().expect("c").to_owned())
        })
        .collect();
    assert_eq!(all, (0..7).rev().map(|i| format!("invoice number {i}")).collect::<Vec<_>>());
    assert!(p2.get("nextCursor").is_none(), "{p2}");

    // Bad input: a clear 400; no token: 401.
    for bad in [
        "/api/messages/search",
        "/api/messages/search?q=",
        "/api/messages/search?q=x&cursor=nope",
        "/api/messages/search?q=x&limit=0",
    ] {
        let (s, body) = app.get(bad, &a.owner_token).await;
        assert_error(s, &body, StatusCode::BAD_REQUEST);
    }
    let long = "x".repeat(201);
    let (s, body) = app.get(&format!("/api/messages/search?q={long}"), &a.owner_token).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST);
    let (s, body) = app.call(Method::GET, "/api/messages/search?q=parcel", None, None).await;
    assert_error(s, &body, StatusCode::UNAUTHORIZED);
    app.finish().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn quick_replies_belong_to_their_owner(backend: Backend) {
    // `serve` (REST and sockets in one process) on either store.
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_replies_{}", bson::oid::ObjectId::new());
    let app = spawn_with(backend, settings(backend, dir.path(), &db), Target::Serve, dir).await;
    let a = business(&app.store, "Acme", 1).await;
    let b = business(&app.store, "Other", 1).await;
    let conv = open(&app, &a, 0).await;
    let owner = &a.owner_token;

    let (s, created) = app
        .post("/api/quick-replies", owner, json!({"shortcut": "/Thanks", "content": "Thank you for your order!"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let r = &created["quickReply"];
    assert_eq!(r["shortcut"], "thanks");
    let id = r["id"].as_str().expect("id").to_owned();
    let (s, body) = app.post("/api/quick-replies", owner, json!({"shortcut": "thanks", "content": "again"})).await;
    assert_error(s, &body, StatusCode::CONFLICT);
    let (s, body) = app.post("/api/quick-replies", owner, json!({"shortcut": "two words", "content": "x"})).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST);
    let (s, body) = app.post("/api/quick-replies", owner, json!({"shortcut": "blank", "content": "   "})).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST);
    let (s, other) =
        app.post("/api/quick-replies", owner, json!({"shortcut": "hours", "content": "We open at 9."})).await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let (s, list) = app.get("/api/quick-replies", owner).await;
    assert_eq!(s, StatusCode::OK);
    let shortcuts: Vec<&str> =
        list["quickReplies"].as_array().expect("list").iter().map(|r| r["shortcut"].as_str().expect("s")).collect();
    assert_eq!(shortcuts, vec!["hours", "thanks"]);
    // Renaming onto a taken shortcut: 409; a real change: 200.
    let other_id = other["quickReply"]["id"].as_str().expect("id");
    let (s, body) = app.patch(&format!("/api/quick-replies/{other_id}"), owner, json!({"shortcut": "thanks"})).await;
    assert_error(s, &body, StatusCode::CONFLICT);
    let (s, body) =
        app.patch(&format!("/api/quick-replies/{id}"), owner, json!({"content": "Thanks, see you soon!"})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["quickReply"]["content"], "Thanks, see you soon!");

    // Deny matrix: customers 403; another owner 404; no token 401.
    let cust = &a.customer_tokens[0];
    let (s, body) = app.get("/api/quick-replies", cust).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    let (s, body) = app.post("/api/quick-replies", cust, json!({"shortcut": "x", "content": "y"})).await;
    assert_error(s, &body, StatusCode::FORBIDDEN);
    for (m, path, body) in [
        (Method::PATCH, format!("/api/quick-replies/{id}"), Some(json!({"content": "stolen"}))),
        (Method::DELETE, format!("/api/quick-replies/{id}"), None),
        (Method::POST, format!("/api/quick-replies/{id}/send"), Some(json!({"conversationId": conv}))),
    ] {
        let (s, r) = app.call(m.clone(), &path, Some(&b.owner_token), body.clone()).await;
        assert_error(s, &r, StatusCode::NOT_FOUND);
        let (s, r) = app.call(m.clone(), &path, Some(cust), body.clone()).await;
        assert_error(s, &r, StatusCode::FORBIDDEN);
        let (s, r) = app.call(m, &path, None, body).await;
        assert_error(s, &r, StatusCode::UNAUTHORIZED);
    }
    let (_, list) = app.get("/api/quick-replies", &b.owner_token).await;
    assert_eq!(list["quickReplies"], json!([]));

    // Sending one over REST (idempotent by clientMessageId), and over a socket by shortcut.
    let mut customer = SioClient::connect(&app.base, Some(cust)).await.expect("customer socket");
    let ack = customer.call("join_conversation", json!({"conversationId": conv})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let path = format!("/api/quick-replies/{id}/send");
    let (s, sent) = app.post(&path, owner, json!({"conversationId": conv, "clientMessageId": "qr-1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["message"]["content"], "Thanks, see you soon!");
    let (s, again) = app.post(&path, owner, json!({"conversationId": conv, "clientMessageId": "qr-1"})).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["message"]["id"], sent["message"]["id"]);
    assert_eq!(customer.expect("message_received").await["content"], "Thanks, see you soon!");
    let mut o = SioClient::connect(&app.base, Some(owner)).await.expect("owner socket");
    let ack = o.call("send_message", json!({"conversationId": conv, "quickReply": "/hours"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["content"], "We open at 9.");
    let ack = o.call("send_message", json!({"conversationId": conv, "quickReply": "nope"})).await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["code"], "NOT_FOUND");
    // A customer cannot send the owner's replies.
    let ack = customer.call("send_message", json!({"conversationId": conv, "quickReply": "hours"})).await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");

    let (s, _) = app.call(Method::DELETE, &format!("/api/quick-replies/{id}"), Some(owner), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app.post(&path, owner, json!({"conversationId": conv})).await;
    assert_error(s, &body, StatusCode::NOT_FOUND);
    app.finish().await;
}

/// Messages crafted against a backtracking pattern (a word repeated a
/// thousand times) and a phrase of that word: the search answers within the
/// store's time limit (MongoDB used to try every way of spreading the
/// phrase's words over each message), and a phrase over the word limit is a
/// clear 400.
async fn crafted_phrases_cannot_stall_search(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = business(&app.store, "Crafted", 1).await;
    let c = open(&app, &a, 0).await;
    let crafted = "a ".repeat(1000);
    for _ in 0..40 {
        let (s, body) = app.send(&a.customer_tokens[0], &c, &crafted).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    app.send(&a.customer_tokens[0], &c, "a a a a a a a zzz at the end").await;
    let started = std::time::Instant::now();
    let url = format!("/api/messages/search?q={}", urlencode("\"a a a a a a a zzz\""));
    let (s, body) = app.get(&url, &a.owner_token).await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::OK, "{body}");
    let found: Vec<&str> =
        body["results"].as_array().expect("results").iter().filter_map(|h| h["message"]["content"].as_str()).collect();
    assert_eq!(found, vec!["a a a a a a a zzz at the end"], "{body}");
    assert!(took < std::time::Duration::from_secs(5), "a crafted phrase took {took:?}");
    let url = format!("/api/messages/search?q={}", urlencode(&format!("\"{}\"", "a ".repeat(9))));
    let (s, body) = app.get(&url, &a.owner_token).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("at most 8 words")), "{body}");
    app.finish().await;
}

per_backend!(
    search_finds_only_your_own_messages,
    quick_replies_belong_to_their_owner,
    crafted_phrases_cannot_stall_search
);
