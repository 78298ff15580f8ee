//! Web Push against a stand-in push service that decrypts with an
//! independent implementation (`tests/push/receiver.py`: Mozilla's
//! `http_ece` and `py_vapid`, from PyPI): on both stores, a message to an
//! offline person reaches each of their browsers once, readable and
//! signed; 410 removes a subscription; a 500 is retried once and not
//! duplicated; nothing goes to the sender, to someone connected, to a
//! reader who read in time, or into a muted conversation; a burst
//! collapses; the preview follows the reader's choice.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Backend, TestApp, assert_error, business, eventually, open, settings, spawn_with};
use omnibiz::app::Target;

struct PushService {
    base: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl PushService {
    async fn start() -> Self {
        let (child, port) = crate::common::python_helper("tests/push/receiver.py", &[]).await;
        Self { base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), _child: child }
    }

    /// A browser's subscription (`PushSubscription.toJSON()`) with its own keys.
    async fn browser(&self, mode: &str) -> Value {
        self.http.get(format!("{}/new?mode={mode}", self.base)).send().await.expect("new").json().await.expect("json")
    }

    async fn received(&self) -> Vec<Value> {
        let r = self.http.get(format!("{}/received", self.base)).send().await.expect("received");
        r.json().await.expect("json")
    }

    /// What the subscription with this endpoint received.
    async fn for_browser(&self, sub: &Value) -> Vec<Value> {
        let id = sub["endpoint"].as_str().expect("endpoint").rsplit('/').next().expect("id").to_owned();
        self.received().await.into_iter().filter(|r| r["subscription"] == id.as_str()).collect()
    }

    async fn wait_for(&self, sub: &Value, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..300 {
            let got = self.for_browser(sub).await;
            if pred(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: the push service got {:#?}", self.for_browser(sub).await);
    }
}

async fn app(backend: Backend) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_push_{}", bson::oid::ObjectId::new());
    let mut s = settings(backend, dir.path(), &db);
    s.webhook_allow_private = true;
    s.webhook_timeout_ms = 2000;
    s.webhook_retry_base_ms = 200;
    s.webhook_poll_ms = 50;
    s.push_delay_ms = 1_000;
    if backend == Backend::Mongo {
        // A configured key, as pods have (on SQLite, `serve` generates one).
        s.vapid_private_key = Some(omnibiz_service::notify::webpush::Vapid::generate_private().into());
        s.vapid_subject = Some("mailto:ops@example.com".into());
    }
    spawn_with(backend, s, Target::Serve, dir).await
}

async fn subscribe(app: &TestApp, token: &str, sub: &Value) -> (StatusCode, Value) {
    app.post("/api/notifications/subscriptions", token, sub.clone()).await
}

/// Waits long enough for a push that is not coming to have come (due after
/// 1 s, worker passes every 50 ms): a negative check that a positive one
/// with the same timing makes meaningful.
async fn quiet_period() {
    tokio::time::sleep(Duration::from_millis(3_000)).await;
}

fn check_push(r: &Value, public_key: &str, conv: &str) {
    assert_eq!(r["vapid"]["ok"], true, "VAPID checked by py_vapid: {r:#}");
    assert_eq!(r["vapid"]["k"], public_key, "signed with the key we publish: {r:#}");
    assert!(r.get("decryptError").is_none(), "decrypted by http_ece: {r:#}");
    assert_eq!(r["contentEncoding"], "aes128gcm");
    assert_eq!(r["ttl"], "86400");
    assert_eq!(r["urgency"], "high");
    assert_eq!(r["topic"], format!("c{conv}"), "one topic per conversation");
    assert!(r["bodyBytes"].as_u64().expect("size") <= 4096, "within RFC 8291's 4 KiB");
    assert_eq!(r["payload"]["conversationId"], conv);
}

async fn web_push(backend: Backend) {
    let push = PushService::start().await;
    let app = app(backend).await;
    let b = business(&app.store, "Pushy", 3).await;
    let (owner, c0, c1, c2) = (&b.owner_token, &b.customer_tokens[0], &b.customer_tokens[1], &b.customer_tokens[2]);
    let (conv0, conv1, conv2) = (open(&app, &b, 0).await, open(&app, &b, 1).await, open(&app, &b, 2).await);

    let (status, key) = app.call(Method::GET, "/api/notifications/push-key", None, None).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let public_key = key["publicKey"].as_str().expect("publicKey").to_owned();

    // Subscriptions: created, the same browser again is an update, and nobody else's to remove.
    let (a, flaky, gone, d, owner_sub) = (
        push.browser("ok").await,
        push.browser("flaky").await,
        push.browser("gone").await,
        push.browser("ok").await,
        push.browser("ok").await,
    );
    let (status, body) = subscribe(&app, c0, &a).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let a_id = body["subscription"]["id"].as_str().expect("id").to_owned();
    let (status, again) = subscribe(&app, c0, &a).await;
    assert_eq!((status, again["subscription"]["id"].as_str()), (StatusCode::OK, Some(a_id.as_str())));
    assert_eq!(subscribe(&app, c0, &flaky).await.0, StatusCode::CREATED);
    assert_eq!(subscribe(&app, c1, &gone).await.0, StatusCode::CREATED);
    assert_eq!(subscribe(&app, c2, &d).await.0, StatusCode::CREATED);
    assert_eq!(subscribe(&app, owner, &owner_sub).await.0, StatusCode::CREATED);
    let (_, mine) = app.get("/api/notifications/subscriptions", c0).await;
    assert_eq!(mine["subscriptions"].as_array().map(Vec::len), Some(2), "{mine}");
    let path = format!("/api/notifications/subscriptions/{a_id}");
    let (status, body) = app.call(Method::DELETE, &path, Some(c1), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // Bad input: clear 400s.
    let mut bad = a.clone();
    bad["keys"]["p256dh"] = json!("AAAA");
    let (status, body) = subscribe(&app, c0, &bad).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap_or_default().contains("p256dh"), "{body}");
    let (status, body) = subscribe(&app, c0, &json!({"endpoint": "ftp://x.example/1", "keys": a["keys"]})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);

    // 1. The owner writes; customer 0 is offline: each browser gets one push, readable and signed.
    let (status, sent) = app.send(owner, &conv0, "Your order ships today").await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let got = push.wait_for(&a, "a push for browser A", |r| !r.is_empty()).await;
    check_push(&got[0], &public_key, &conv0);
    let p = &got[0]["payload"];
    assert_eq!(p["title"], "Pushy Owner", "the sender's name: {p}");
    assert_eq!(p["body"], "Your order ships today");
    assert_eq!(p["messageId"], sent["message"]["id"]);
    assert_eq!((p["unread"].as_i64(), p["seq"].clone()), (Some(1), sent["message"]["seq"].clone()), "{p}");
    // The flaky browser: 500, retried once, then 201 — two attempts, one notification.
    let got = push.wait_for(&flaky, "a retried push", |r| r.len() >= 2).await;
    assert_eq!(got.iter().map(|r| r["answered"].as_u64()).collect::<Vec<_>>(), vec![Some(500), Some(201)]);
    assert_eq!(got[1]["payload"], got[0]["payload"], "the retry carries the same notification");
    check_push(&got[1], &public_key, &conv0);

    // 2. 410 Gone removes the subscription.
    app.send(owner, &conv1, "Hello customer 1").await;
    push.wait_for(&gone, "the push answered 410", |r| r.len() == 1).await;
    let removed = eventually(100, Duration::from_millis(100), || async {
        let (_, l) = app.get("/api/notifications/subscriptions", c1).await;
        l["subscriptions"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(removed, "a subscription the push service says is gone is removed");

    // 3. Read in time: none. Connected: none. Offline and unread: one (so the quiet periods mean something).
    let (_, m) = app.send(owner, &conv2, "read me quickly").await;
    let mid = m["message"]["id"].as_str().expect("id").to_owned();
    let (status, _) = app.post(&format!("/api/messages/{mid}/read"), c2, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let socket = SioClient::connect(&app.base, Some(c2)).await.expect("customer 2 connects");
    app.send(owner, &conv2, "you are online").await;
    quiet_period().await;
    assert!(push.for_browser(&d).await.is_empty(), "read in time, or connected: no push");
    socket.disconnect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.send(owner, &conv2, "now you are away").await;
    let got = push.wait_for(&d, "a push once offline", |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["payload"]["body"], "now you are away");

    // 4. Never to the sender: customer 0 writes; the owner's browser hears, customer 0's do not.
    let before = push.for_browser(&a).await.len();
    app.send(c0, &conv0, "Thanks!").await;
    let got = push.wait_for(&owner_sub, "the owner's push", |r| !r.is_empty()).await;
    assert_eq!(got[0]["payload"]["title"], "Pushy Customer 0");
    check_push(&got[0], &public_key, &conv0);
    quiet_period().await;
    assert_eq!(push.for_browser(&a).await.len(), before, "the sender's own browser hears nothing");

    // 5. A burst collapses: 15 messages, at most a few pushes, the last with the whole count.
    let before = push.for_browser(&a).await.len();
    let mut last = Value::Null;
    for i in 0..15 {
        last = app.send(owner, &conv0, &format!("burst {i}")).await.1;
    }
    let want_seq = last["message"]["seq"].clone();
    let got = push.wait_for(&a, "the burst's last push", |r| r.iter().any(|x| x["payload"]["seq"] == want_seq)).await;
    quiet_period().await;
    let burst: Vec<Value> = push.for_browser(&a).await.split_off(before);
    assert!((1..=3).contains(&burst.len()), "15 messages collapse into a few pushes: {}", burst.len());
    let final_push = &got.last().expect("one")["payload"];
    assert_eq!(final_push["body"], "burst 14");
    // The unread count is the recipient's, as the conversation has it.
    let (_, conv) = app.get(&format!("/api/messages/conversations/{conv0}"), c0).await;
    let unread = conv["conversation"]["unreadCount"].as_i64().expect("unreadCount");
    assert!(unread >= 15, "{conv}");
    assert_eq!(final_push["unread"].as_i64(), Some(unread), "{final_push}");

    // 6. Preferences: no preview for privacy, then muted.
    let (status, body) =
        app.call(Method::PUT, "/api/notifications/preferences", Some(c0), Some(json!({"preview": "none"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = push.for_browser(&a).await.len();
    app.send(owner, &conv0, "a secret code 4321").await;
    let got = push.wait_for(&a, "a push without preview", |r| r.len() > before).await;
    assert_eq!(got[before]["payload"]["body"], "New message");
    assert!(!got[before]["payload"].to_string().contains("4321"));
    let (status, body) =
        app.call(Method::PUT, "/api/notifications/preferences", Some(c0), Some(json!({"muted": [conv1]}))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST); // not customer 0's conversation
    let (status, body) =
        app.call(Method::PUT, "/api/notifications/preferences", Some(c0), Some(json!({"muted": [conv0]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        app.call(Method::PUT, "/api/notifications/preferences", Some(c0), Some(json!({"emailDelaySecs": 300}))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let before = push.for_browser(&a).await.len();
    app.send(owner, &conv0, "muted now").await;
    quiet_period().await;
    assert_eq!(push.for_browser(&a).await.len(), before, "a muted conversation notifies nothing");

    // Unsubscribing: one's own, once.
    let (status, _) = app.call(Method::DELETE, &path, Some(c0), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.call(Method::DELETE, &path, Some(c0), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    app.finish().await;
}

/// A group: a member's message reaches every other member's browser (not
/// the sender's), each counted by their own read state; a customer removed
/// from the group gets nothing more.
async fn group_push(backend: Backend) {
    let push = PushService::start().await;
    let app = app(backend).await;
    let b = business(&app.store, "Club", 3).await;
    let (owner, tokens) = (&b.owner_token, &b.customer_tokens);
    let (status, key) = app.call(Method::GET, "/api/notifications/push-key", None, None).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    let public_key = key["publicKey"].as_str().expect("publicKey").to_owned();
    let mut browsers = Vec::new();
    for t in tokens {
        let sub = push.browser("ok").await;
        assert_eq!(subscribe(&app, t, &sub).await.0, StatusCode::CREATED);
        browsers.push(sub);
    }
    let ids: Vec<String> = b.customers.iter().map(|c| c.id.to_hex()).collect();
    let (status, v) =
        app.post("/api/groups", owner, json!({"title": "Book club", "customerIds": [ids[0], ids[1], ids[2]]})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let g = v["conversation"]["id"].as_str().expect("id").to_owned();

    assert_eq!(app.send(&tokens[0], &g, "Who brings the cake?").await.0, StatusCode::CREATED);
    for sub in &browsers[1..] {
        let got = push.wait_for(sub, "a member's push", |r| !r.is_empty()).await;
        check_push(&got[0], &public_key, &g);
        assert_eq!(got[0]["payload"]["body"], "Who brings the cake?");
    }
    // Customer 1 leaves; customer 0 writes again: only customer 2 hears.
    let path = format!("/api/groups/{g}/members");
    let (status, v) = app.call(Method::PATCH, &path, Some(owner), Some(json!({"remove": [ids[1]]}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the next push window
    assert_eq!(app.send(&tokens[0], &g, "Six o'clock then").await.0, StatusCode::CREATED);
    let got = push.wait_for(&browsers[2], "the second push", |r| r.len() >= 2).await;
    assert_eq!(got[1]["payload"]["body"], "Six o'clock then");
    quiet_period().await;
    assert!(push.for_browser(&browsers[0]).await.is_empty(), "never the sender");
    assert_eq!(push.for_browser(&browsers[1]).await.len(), 1, "nothing after leaving");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_push_on_sqlite() {
    group_push(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_push_on_mongodb() {
    group_push(Backend::Mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_on_sqlite() {
    web_push(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_on_mongodb() {
    web_push(Backend::Mongo).await;
}

/// Two `api` pods share one MongoDB outbox; one is SIGKILLed while every
/// push is still due (planned, waiting out the delay), a third starts:
/// each browser gets its notification exactly once — none lost, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pods_killed_while_pushes_are_due_lose_none_and_send_none_twice() {
    const N: usize = 12;
    let push = PushService::start().await;
    let db = format!("omnibiz_push_kill_{}", bson::oid::ObjectId::new());
    let mongo = omnibiz_store::mongo::MongoStore::connect(&crate::common::mongo_uri(), Some(&db)).await.expect("mongo");
    let store: Arc<dyn omnibiz_store::Store> = Arc::new(mongo.clone());
    let b = business(&store, "Killpush", N).await;
    let key = omnibiz_service::notify::webpush::Vapid::generate_private();
    let env = [
        ("OMNIBIZ_VAPID_PRIVATE_KEY", key.as_str()),
        ("OMNIBIZ_VAPID_SUBJECT", "mailto:ops@example.com"),
        ("OMNIBIZ_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("OMNIBIZ_WEBHOOK_POLL_MS", "50"),
        ("OMNIBIZ_WEBHOOK_TIMEOUT_MS", "2000"),
        ("OMNIBIZ_PUSH_DELAY_MS", "3000"),
    ];
    let (mut pod1, api1) = crate::common::omnibiz_process("api", &db, &env).await;
    let (_pod2, api2) = crate::common::omnibiz_process("api", &db, &env).await;
    let http = reqwest::Client::new();
    for base in [&api1, &api2] {
        let ready = eventually(200, Duration::from_millis(100), || async {
            http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(ready, "{base} ready");
    }
    let post = |base: &str, path: &str, token: &str, body: Value| {
        let req = http.post(format!("{base}{path}")).bearer_auth(token).json(&body);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let mut browsers = Vec::new();
    for i in 0..N {
        let base = if i % 2 == 0 { &api1 } else { &api2 };
        let sub = push.browser("ok").await;
        let (status, body) = post(base, "/api/notifications/subscriptions", &b.customer_tokens[i], sub.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let customer = b.customers[i].id.to_hex();
        let (_, conv) =
            post(base, "/api/messages/conversations", &b.owner_token, json!({"customerId": customer})).await;
        let conv = conv["conversation"]["id"].as_str().expect("conversation").to_owned();
        let body = json!({"conversationId": conv, "content": format!("message {i}")});
        let (status, sent) = post(base, "/api/messages/send", &b.owner_token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        browsers.push((sub, format!("message {i}")));
    }
    // Every push is planned or about to be, none due yet: kill a pod now, start another.
    pod1.start_kill().expect("SIGKILL");
    let _ = pod1.wait().await;
    let (_pod3, _) = crate::common::omnibiz_process("api", &db, &env).await;
    for (sub, text) in &browsers {
        let got = push.wait_for(sub, "a push after the kill", |r| !r.is_empty()).await;
        assert_eq!(got[0]["payload"]["body"], text.as_str());
        assert!(got[0].get("decryptError").is_none() && got[0]["vapid"]["ok"] == true, "{:#}", got[0]);
    }
    quiet_period().await;
    for (sub, text) in &browsers {
        assert_eq!(push.for_browser(sub).await.len(), 1, "exactly one push for {text:?}");
    }
    mongo.drop_database().await.expect("drop");
}
