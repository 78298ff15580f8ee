//! The gateway end to end: an API and two gateways on one Redis and one
//! MongoDB (all on port 0), driven by a Socket.IO client.

use std::sync::Arc;
use std::time::Duration;

use crate::common::sio::SioClient;
use crate::common::{Backend, Business, TestApp, business, open, settings, spawn_with};
use omnibiz::app::Target;
use serde_json::{Value, json};

struct Cluster {
    api: TestApp,
    gw1: TestApp,
    gw2: TestApp,
}

async fn cluster() -> Cluster {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_gw_{}", bson::oid::ObjectId::new());
    let s = crate::common::settings(Backend::Mongo, dir.path(), &db);
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw1 = spawn_with(Backend::Mongo, s.clone(), Target::Gateway, Arc::clone(&dir)).await;
    let gw2 = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    Cluster { api, gw1, gw2 }
}

impl Cluster {
    async fn finish(self) {
        self.gw1.stop().await;
        self.gw2.stop().await;
        self.api.finish().await;
    }
}

async fn client(app: &TestApp, token: &str) -> SioClient {
    SioClient::connect(&app.base, Some(token)).await.expect("connect")
}

async fn join(c: &mut SioClient, conv: &str) -> Value {
    let ack = c.call("join_conversation", json!(conv)).await;
    assert_eq!(ack["ok"], true, "join: {ack}");
    ack
}

const QUIET: Duration = Duration::from_millis(400);

async fn conversation_list(app: &TestApp, token: &str) -> Vec<Value> {
    let (_, body) = app.get("/api/messages/conversations", token).await;
    body["conversations"].as_array().expect("list").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_typing_notifications_and_presence_across_gateways() {
    let c = cluster().await;
    let b: Business = business(&c.api.store, "Relay", 2).await;
    let conv = open(&c.api, &b, 0).await;
    let conv2 = open(&c.api, &b, 1).await;
    let mut owner = client(&c.gw1, &b.owner_token).await;
    let mut cust = client(&c.gw2, &b.customer_tokens[0]).await;
    let mut other_cust = client(&c.gw2, &b.customer_tokens[1]).await;
    join(&mut owner, &conv).await;
    let ack = join(&mut cust, &conv).await;
    assert_eq!(ack["otherOnline"], true, "the owner's presence on gateway 1 is seen from gateway 2");

    // Presence across gateways, as the REST list reports it.
    let list = conversation_list(&c.api, &b.owner_token).await;
    assert!(list.iter().all(|x| x["isOnline"] == true), "both customers are connected: {list:?}");

    // REST → API → Redis → gateway 2.
    let (s, sent) = c.api.send(&b.owner_token, &conv, "via REST").await;
    assert_eq!(s, reqwest::StatusCode::CREATED);
    let got = cust.expect("message_received").await;
    assert_eq!(got, sent["message"], "same payload as the REST response");
    assert_eq!(owner.expect("message_sent").await["id"], sent["message"]["id"], "sender's sockets get message_sent");
    // Not joined, so only the notification reaches the other customer.
    let (_, n) = c.api.send(&b.owner_token, &conv2, "for customer 1 only").await;
    let note = other_cust.expect("new_message_notification").await;
    assert_eq!(note["conversationId"], conv2.as_str());
    assert_eq!(note["preview"], "for customer 1 only");
    assert_eq!(note["from"], "Relay Owner");
    assert!(other_cust.try_expect("message_received", QUIET).await.is_none(), "{n}");

    // Socket on gateway 2 → gateway 1, with the seed's payload shape.
    let ack = cust
        .call(
            "send_message",
            json!({"conversationId": conv, "message": "via socket", "senderId": "forged", "senderName": "Mallory"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["message"]["senderId"], b.customers[0].id.to_hex(), "sender from the token");
    assert_eq!(ack["message"]["senderName"], b.customers[0].name);
    assert_eq!(cust.expect("message_sent").await["id"], ack["message"]["id"]);
    let got = owner.expect("message_received").await;
    assert_eq!(got["content"], "via socket");
    assert_eq!(owner.expect("new_message_notification").await["conversationId"], conv.as_str());
    // Socket on gateway 1 → gateway 2.
    owner.emit("send_message", json!({"conversationId": conv, "content": "from gateway 1"}));
    assert_eq!(cust.expect("message_received").await["content"], "from gateway 1");
    // Exactly once each.
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "no duplicate on gateway 2");
    assert!(owner.try_expect("message_received", QUIET).await.is_none(), "no duplicate on gateway 1");
    assert!(cust.try_expect("message_sent", QUIET).await.is_none(), "no echo to the sending socket");

    // Typing: relayed to the other side only, and stopped by the server after 3 s.
    let ack = cust.call("typing_start", json!({"conversationId": conv})).await;
    assert_eq!(ack["ok"], true);
    let t = owner.expect("user_typing").await;
    assert_eq!(
        t,
        json!({"conversationId": conv, "userId": b.customers[0].id.to_hex(), "userName": b.customers[0].name})
    );
    let started = tokio::time::Instant::now();
    let stop = owner.expect("user_stopped_typing").await;
    assert_eq!(stop["userId"], b.customers[0].id.to_hex());
    assert!(started.elapsed() >= Duration::from_secs(2), "expiry, not an immediate stop");
    assert!(cust.try_expect("user_typing", QUIET).await.is_none(), "not to the typist");
    // An explicit stop is relayed at once.
    owner.emit("typing_start", json!({"conversationId": conv}));
    cust.expect("user_typing").await;
    owner.emit("typing_stop", json!({"conversationId": conv}));
    cust.expect("user_stopped_typing").await;

    // Read receipts and delivery status travel too.
    let ack = owner.call("message_delivered", json!({"conversationId": conv, "messageId": got["id"]})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let st = cust.expect("message_status").await;
    assert_eq!(st, json!({"conversationId": conv, "messageId": got["id"], "status": "delivered"}));
    let ack = owner.call("mark_read", json!({"conversationId": conv, "messageId": got["id"]})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let read = cust.expect("messages_read").await;
    assert_eq!(read["readerId"], b.owner.id.to_hex());
    assert_eq!(read["upToSeq"], got["seq"]);

    // Leaving: presence event to the other side.
    cust.call("leave_conversation", json!(conv)).await;
    let mut p = owner.expect("presence").await;
    while p["online"] == true {
        p = owner.expect("presence").await; // the earlier "joined" event may come first
    }
    assert_eq!((p["userId"].clone(), p["online"].clone()), (json!(b.customers[0].id.to_hex()), json!(false)));
    owner.disconnect();
    cust.disconnect();
    other_cust.disconnect();
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_to_the_other_gateway_with_last_seq_loses_nothing() {
    let c = cluster().await;
    let b = business(&c.api.store, "Recover", 1).await;
    let conv = open(&c.api, &b, 0).await;
    let mut cust = client(&c.gw2, &b.customer_tokens[0]).await;
    join(&mut cust, &conv).await;
    let (_, first) = c.api.send(&b.owner_token, &conv, "before the break").await;
    let last_seq = cust.expect("message_received").await["seq"].as_i64().expect("seq");
    assert_eq!(first["message"]["seq"], last_seq);
    cust.disconnect();

    for i in 0..50 {
        let (s, _) = c.api.send(&b.owner_token, &conv, &format!("while away {i}")).await;
        assert_eq!(s, reqwest::StatusCode::CREATED);
    }
    // Live traffic keeps flowing while the customer rejoins on the other gateway.
    let api_base = c.api.base.clone();
    let (token, conv2) = (b.owner_token.clone(), conv.clone());
    let live = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for i in 0..20 {
            let r = http
                .post(format!("{api_base}/api/messages/send"))
                .bearer_auth(&token)
                .json(&json!({"conversationId": conv2, "content": format!("live {i}")}))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        }
    });
    let mut cust = client(&c.gw1, &b.customer_tokens[0]).await;
    let ack = cust.call("join_conversation", json!({"conversationId": conv, "lastSeq": last_seq})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    live.await.expect("live sender");
    let total = 50 + 20;
    let mut seqs = Vec::new();
    let mut contents = Vec::new();
    for _ in 0..total {
        let m = cust.expect("message_received").await;
        seqs.push(m["seq"].as_i64().expect("seq"));
        contents.push(m["content"].as_str().expect("content").to_owned());
    }
    let expected: Vec<i64> = (last_seq + 1..=last_seq + total).collect();
    assert_eq!(seqs, expected, "every message once, in order, history then live");
    assert_eq!(contents[0], "while away 0");
    assert_eq!(contents[49], "while away 49");
    assert!(cust.try_expect("message_received", QUIET).await.is_none(), "no duplicates afterwards");
    let (_, m) = c.api.send(&b.owner_token, &conv, "after").await;
    assert_eq!(cust.expect("message_received").await["seq"], m["message"]["seq"]);
    cust.disconnect();
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_subscribes_only_while_it_has_members() {
    let c = cluster().await;
    let b = business(&c.api.store, "Subs", 1).await;
    let conv = open(&c.api, &b, 0).await;
    let channel = format!("omnibiz:{{conv:{conv}}}");
    assert_eq!(crate::common::numsub(&channel).await, 0);
    let mut owner = client(&c.gw1, &b.owner_token).await;
    join(&mut owner, &conv).await;
    assert_eq!(crate::common::numsub(&channel).await, 1, "only gateway 1 has a member");
    let mut second = client(&c.gw1, &b.owner_token).await;
    join(&mut second, &conv).await;
    assert_eq!(crate::common::numsub(&channel).await, 1, "one subscription per gateway, however many members");
    let mut cust = client(&c.gw2, &b.customer_tokens[0]).await;
    join(&mut cust, &conv).await;
    assert_eq!(crate::common::numsub(&channel).await, 2);
    cust.call("leave_conversation", json!({"conversationId": conv})).await;
    assert_eq!(crate::common::numsub(&channel).await, 1, "gateway 2 unsubscribed after its last member left");
    owner.call("leave_conversation", json!(conv)).await;
    assert_eq!(crate::common::numsub(&channel).await, 1, "gateway 1 still has a member");
    second.disconnect();
    let gone = crate::common::eventually(50, Duration::from_millis(50), || async {
        crate::common::numsub(&channel).await == 0
    })
    .await;
    assert!(gone, "a disconnect releases the last subscription");
    // And a message now reaches no gateway's sockets: gateway 2's client stays quiet.
    c.api.send(&b.owner_token, &conv, "nobody listens").await;
    assert!(cust.try_expect("message_received", QUIET).await.is_none());
    owner.disconnect();
    cust.disconnect();
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_tenant_and_malformed_events_are_refused_without_leaks() {
    let c = cluster().await;
    let a = business(&c.api.store, "Victim", 1).await;
    let z = business(&c.api.store, "Stranger", 1).await;
    let conv = open(&c.api, &a, 0).await;
    let mut victim = client(&c.gw1, &a.owner_token).await;
    join(&mut victim, &conv).await;
    for token in [&z.owner_token, &z.customer_tokens[0]] {
        let mut bad = client(&c.gw2, token).await;
        let ack = bad.call("join_conversation", json!({"conversationId": conv, "lastSeq": 0})).await;
        assert_eq!((ack["ok"].clone(), ack["code"].clone()), (json!(false), json!("NOT_FOUND")), "{ack}");
        assert_eq!(bad.expect("message_error").await["code"], "NOT_FOUND");
        let ack =
            bad.call("send_message", json!({"conversationId": conv, "message": "hi", "clientMessageId": "x1"})).await;
        assert_eq!(ack["ok"], false);
        let err = bad.expect("message_error").await;
        assert_eq!((err["code"].clone(), err["clientMessageId"].clone()), (json!("NOT_FOUND"), json!("x1")));
        let ack = bad.call("typing_start", json!({"conversationId": conv})).await;
        assert_eq!(ack["ok"], false);
        assert!(bad.try_expect("message_received", QUIET).await.is_none());
        bad.disconnect();
    }
    assert!(victim.try_expect("user_typing", QUIET).await.is_none(), "no typing leaked");
    assert!(victim.try_expect("message_received", Duration::from_millis(50)).await.is_none());
    let (_, page) = c.api.get(&format!("/api/messages/conversations/{conv}"), &a.owner_token).await;
    assert_eq!(page["messages"], json!([]), "nothing stored");

    // Malformed payloads: errors for that event, the connection stays up.
    let mut me = client(&c.gw2, &a.customer_tokens[0]).await;
    for (event, data) in [
        ("join_conversation", json!(42)),
        ("join_conversation", json!({"conversationId": "zz"})),
        ("join_conversation", Value::Null),
        ("send_message", json!("not an object")),
        ("send_message", json!({"conversationId": conv, "message": ""})),
        ("send_message", json!({"conversationId": conv, "message": "x".repeat(5001)})),
        ("mark_read", json!({"conversationId": conv, "seq": "x"})),
        ("message_delivered", json!({})),
    ] {
        let ack = me.call(event, data.clone()).await;
        assert_eq!(ack["ok"], false, "{event} {data}");
        assert_eq!(ack["code"], "VALIDATION_ERROR", "{event} {data}: {ack}");
    }
    me.emit("no_such_event", json!({"x": 1}));
    join(&mut me, &conv).await;
    assert!(!me.is_closed(), "still connected after wrong payloads");
    // A packet that is not Socket.IO at all closes that one client (as Node's
    // socket.io does); the gateway serves everyone else on.
    for garbage in ["42[\"join_conversation\"", "42[]"] {
        let rogue = client(&c.gw2, &a.customer_tokens[0]).await;
        rogue.raw(garbage);
        let closed = crate::common::eventually(50, Duration::from_millis(20), || async { rogue.is_closed() }).await;
        assert!(closed, "an unparseable packet ({garbage}) closes that client");
    }
    let ack = me.call("send_message", json!({"conversationId": conv, "message": "still works"})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(victim.expect("message_received").await["content"], "still works");
    me.disconnect();
    victim.disconnect();
    c.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_at_connect() {
    let c = cluster().await;
    let b = business(&c.api.store, "Auth", 1).await;
    let err = SioClient::connect(&c.gw1.base, None).await.err().expect("refused");
    assert!(err.contains("missing"), "{err}");
    let err = SioClient::connect(&c.gw1.base, Some("garbage")).await.err().expect("refused");
    assert!(err.contains("invalid"), "{err}");
    let forged = omnibiz_service::auth::mint_hs256(
        b"wrong-secret",
        &omnibiz_service::auth::Principal::Customer { id: b.customers[0].id },
        60,
    )
    .expect("mint");
    assert!(SioClient::connect(&c.gw1.base, Some(&forged)).await.is_err());
    let unknown =
        crate::common::token(&omnibiz_service::auth::Principal::Customer { id: omnibiz_domain::CustomerId::new() });
    let err = SioClient::connect(&c.gw1.base, Some(&unknown)).await.err().expect("refused");
    assert!(err.contains("not found"), "{err}");
    // `?token=` (it lands in proxy logs) is off unless OMNIBIZ_ALLOW_QUERY_TOKEN is set.
    let err = SioClient::connect_with_query_token(&c.gw1.base, &b.owner_token).await.err().expect("refused");
    assert!(err.contains("missing"), "{err}");
    c.finish().await;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "query_token");
    s.allow_query_token = true;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Query", 0).await;
    let mut q = SioClient::connect_with_query_token(&app.base, &b.owner_token).await.expect("query token allowed");
    assert_eq!(
        q.call("join_conversation", json!({"conversationId": "65a1b2c3d4e5f60718293a4b"})).await["code"],
        "NOT_FOUND"
    );
    q.disconnect();
    app.finish().await;
}

/// A real `omnibiz gateway` process, killed with SIGKILL: its users go offline by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_of_a_killed_gateway_go_offline_within_the_ttl() {
    let c = cluster().await;
    let b = business(&c.api.store, "Crash", 1).await;
    let conv = open(&c.api, &b, 0).await;
    let db = c.api.settings.mongodb_database.clone().expect("db");
    let (mut child, base) = crate::common::gateway_process(&db, &[("OMNIBIZ_PRESENCE_TTL_SECS", "3")]).await;
    let mut cust = SioClient::connect(&base, Some(&b.customer_tokens[0])).await.expect("connect to the child");
    join(&mut cust, &conv).await;
    let online = |v: Vec<Value>| v[0]["isOnline"] == true;
    assert!(online(conversation_list(&c.api, &b.owner_token).await), "online while connected");
    child.kill().await.expect("SIGKILL");
    let mut offline_after = None;
    let start = tokio::time::Instant::now();
    for _ in 0..100 {
        if !online(conversation_list(&c.api, &b.owner_token).await) {
            offline_after = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = offline_after.expect("offline within 10 s of the kill");
    assert!(after <= Duration::from_secs(8), "went offline after {after:?}");
    drop(cust);
    c.finish().await;
}

/// One gateway with small limits, for back-pressure and rate-limit tests.
async fn tight_gateway(max_connections: usize, socket_buffer: usize) -> (TestApp, TestApp) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_gw_{}", bson::oid::ObjectId::new());
    let s = crate::common::settings(Backend::Mongo, dir.path(), &db);
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let tight = omnibiz_service::config::Settings { max_connections, socket_buffer, send_rate: 5, typing_rate: 5, ..s };
    let gw = spawn_with(Backend::Mongo, tight, Target::Gateway, dir).await;
    (api, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_cap_and_send_rate_limit() {
    let (api, gw) = tight_gateway(2, 256).await;
    let b = business(&api.store, "Limits", 1).await;
    let conv = open(&api, &b, 0).await;
    let mut one = client(&gw, &b.owner_token).await;
    let two = client(&gw, &b.customer_tokens[0]).await;
    // Refused at the Engine.IO handshake, before any token is read: 503.
    let err = SioClient::connect(&gw.base, Some(&b.owner_token)).await.err().expect("third refused");
    assert!(err.contains("503"), "{err}");
    two.disconnect();
    let mut admitted = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(c) = SioClient::connect(&gw.base, Some(&b.customer_tokens[0])).await {
            admitted = Some(c);
            break;
        }
    }
    assert!(admitted.is_some(), "a slot frees up when a client leaves");

    // 5/s with bursts of 10: a burst of 30 is partly refused, with a clear code.
    join(&mut one, &conv).await;
    let mut refused = 0;
    for i in 0..30 {
        let ack = one.call("send_message", json!({"conversationId": conv, "message": format!("burst {i}")})).await;
        if ack["ok"] == false {
            assert_eq!(ack["code"], "RATE_LIMITED", "{ack}");
            refused += 1;
        }
    }
    assert!(refused >= 10, "only {refused} of 30 refused");
    // Typing is limited too (5/s, bursts of 10), and says so in the ack only.
    let mut typing_refused = 0;
    for _ in 0..30 {
        let ack = one.call("typing_start", json!({"conversationId": conv})).await;
        if ack["ok"] == false {
            assert_eq!(ack["code"], "RATE_LIMITED", "{ack}");
            typing_refused += 1;
        }
    }
    assert!(typing_refused >= 10, "only {typing_refused} of 30 typing events refused");
    let (_, page) = api.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    assert_eq!(page["messages"].as_array().expect("messages").len(), 30 - refused, "refused sends were not stored");
    one.disconnect();
    gw.stop().await;
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_dropped_not_buffered() {
    use futures_util::SinkExt as _;
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_gw_{}", bson::oid::ObjectId::new());
    let api =
        spawn_with(Backend::Mongo, crate::common::settings(Backend::Mongo, dir.path(), &db), Target::Api, dir).await;
    // A gateway process of its own, so that its metrics are its own.
    let (mut gw, gw_base) = crate::common::gateway_process(&db, &[("OMNIBIZ_SOCKET_BUFFER", "8")]).await;
    let b = business(&api.store, "Slow", 1).await;
    let conv = open(&api, &b, 0).await;
    // A raw client that joins and then never reads again.
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", gw_base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("ws");
    async fn until(
        ws: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        prefix: &str,
    ) {
        while let Some(Ok(m)) = ws.next().await {
            if m.to_text().is_ok_and(|t| t.starts_with(prefix)) {
                return;
            }
        }
        panic!("connection ended before a `{prefix}` packet");
    }
    until(&mut ws, "0").await;
    ws.send(Message::text(format!("40{}", json!({"token": b.customer_tokens[0]})))).await.expect("connect");
    until(&mut ws, "40").await;
    ws.send(Message::text(format!("420{}", json!(["join_conversation", conv])))).await.expect("join");
    until(&mut ws, "430").await;
    let dropped_before = metric_at(&gw_base, "gateway_slow_clients_dropped_total").await;
    // Flood it through the API until the gateway gives up on it.
    let big = "x".repeat(4000);
    let mut dropped = false;
    for _ in 0..60 {
        for _ in 0..20 {
            api.send(&b.owner_token, &conv, &big).await;
        }
        if metric_at(&gw_base, "gateway_slow_clients_dropped_total").await > dropped_before {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the gateway dropped the client that stopped reading");
    // And it let go of the connection at once, though its frames cannot
    // drain (the client still reads nothing): the ping timeout, the only
    // other way out, is 45 s away.
    let released = crate::common::eventually(100, Duration::from_millis(100), || async {
        metric_at(&gw_base, "gateway_connections").await == 0.0
    })
    .await;
    assert!(released, "the dropped connection was released promptly");
    // The gateway itself is fine: a fresh client works.
    let mut fresh = SioClient::connect(&gw_base, Some(&b.owner_token)).await.expect("connect");
    join(&mut fresh, &conv).await;
    fresh.disconnect();
    drop(ws);
    let _ = gw.kill().await;
    api.finish().await;
}

/// A metric's value (summed over labels) from `/metrics`. In-process apps
/// of one test binary share the metrics registry: read a gauge from a
/// gateway process of its own.
async fn metric_at(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The Engine.IO heartbeat: pings on the interval; a client that answers
/// stays, one that does not is dropped after interval + timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_live_clients_and_drops_silent_ones() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = crate::common::settings(Backend::Sqlite, dir.path(), "heartbeat");
    s.ping_interval_secs = 1;
    s.ping_timeout_secs = 1;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Beat", 2).await;
    let conv = open(&app, &b, 0).await;
    let mut live = client(&app, &b.customer_tokens[0]).await;
    join(&mut live, &conv).await;

    // A client that completes CONNECT and then never answers a ping.
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let (mut silent, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    let auth = json!({"token": b.customer_tokens[1]});
    futures_util::SinkExt::send(&mut silent, Message::text(format!("40{auth}"))).await.expect("connect");
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(Ok(m)) = silent.next().await {
            match m {
                Message::Text(t) if t.as_str() == "2" => pings += 1,
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the silent client was never dropped");
    assert_eq!(pings, 1, "one ping, then dropped for not answering it");
    assert!(started.elapsed() >= Duration::from_millis(1800), "dropped only after interval + timeout");

    // The live client has answered every ping meanwhile and still works.
    assert!(!live.is_closed());
    let ack = live.call("send_message", json!({"conversationId": conv, "content": "still here"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    live.disconnect();
    app.finish().await;
}

/// Frames past the 7-bit length form (here ≈ 7 KB each way) cross our
/// WebSocket framing intact, and an oversized frame closes only its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_cross_the_websocket_intact() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let s = crate::common::settings(Backend::Sqlite, dir.path(), "long");
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Long", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut owner = client(&app, &b.owner_token).await;
    let mut cust = client(&app, &b.customer_tokens[0]).await;
    join(&mut owner, &conv).await;
    join(&mut cust, &conv).await;
    let long = "😀 ünïcödé ".repeat(400); // 4 400 chars, 6 800 bytes of UTF-8
    let ack = cust.call("send_message", json!({"conversationId": conv, "content": long})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let got = owner.expect("message_received").await;
    assert_eq!(got["content"].as_str(), Some(long.trim_end()), "byte for byte (trailing space trimmed)");
    // Past the 128 KiB limit: that socket is closed, the other is untouched.
    cust.raw(&format!("42[\"send_message\",{{\"content\":\"{}\"}}]", "x".repeat(200 * 1024)));
    let closed = crate::common::eventually(50, Duration::from_millis(100), || async { cust.is_closed() }).await;
    assert!(closed, "an oversized frame closes the connection");
    let ack = owner.call("send_message", json!({"conversationId": conv, "content": "still fine"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    owner.disconnect();
    app.finish().await;
}

/// An API that dies between storing a message and publishing it leaves a
/// message no live socket received. The client's retry with the same
/// `clientMessageId` stores nothing new, but publishes it again; gateways
/// deliver each stored `seq` once, so a second retry changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_republishes_what_a_crash_left_unpublished_and_nothing_twice() {
    let c = cluster().await;
    let b: Business = business(&c.api.store, "Retry", 1).await;
    let conv = open(&c.api, &b, 0).await;
    let mut owner = client(&c.gw1, &b.owner_token).await;
    join(&mut owner, &conv).await;
    // Stored, never published: what an API killed between the two leaves.
    let stored = c
        .api
        .store
        .append_message(omnibiz_store::NewMessage {
            conversation_id: conv.parse().expect("id"),
            sender_id: b.customers[0].id.to_hex(),
            sender_side: omnibiz_domain::Side::Customer,
            sender_name: b.customers[0].name.clone(),
            content: "stored before the crash".into(),
            attachments: Vec::new(),
            client_message_id: Some("crash-1".into()),
            created_at: chrono::Utc::now(),
            reply_to: None,
            acting_for: None,
            team_role: None,
            private: false,
            system: false,
        })
        .await
        .expect("append")
        .expect("a participant's send is taken")
        .into_message();
    assert!(owner.try_expect("message_received", QUIET).await.is_none(), "nothing was published");
    let retry = json!({"conversationId": conv, "content": "stored before the crash", "clientMessageId": "crash-1"});
    for attempt in 0..2 {
        let (status, body) = c.api.post("/api/messages/send", &b.customer_tokens[0], retry.clone()).await;
        assert_eq!(status, reqwest::StatusCode::OK, "a retry, not a new message: {body}");
        assert_eq!(body["message"]["seq"], stored.seq);
        let got = owner.try_expect("message_received", Duration::from_secs(3)).await;
        if attempt == 0 {
            let got = got.expect("the retry delivered it");
            assert_eq!(got["seq"], stored.seq);
        } else {
            assert!(got.is_none(), "delivered once, whatever the number of retries: {got:?}");
        }
    }
    let (_, page) = c.api.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    assert_eq!(page["messages"].as_array().expect("messages").len(), 1, "stored once");
    c.finish().await;
}
