//! The chaos suite: a [`TestCluster`] (2 `api`, 2 `gateway`, its own Redis
//! and MongoDB-compatible server, all real processes) under steady load —
//! 100 REST sends/s retried by `clientMessageId` until acknowledged, a
//! socket sender doing the same (`OMNIBIZ_CHAOS_RATE`/`_SECS` set the REST rate and duration), 20 official socket.io-client receivers
//! (one of them stalls its event loop 1.5 s of every 3 s) that move to the other gateway and
//! rejoin with the highest `seq` they saw — while the suite SIGKILLs a
//! gateway, restarts Redis, SIGKILLs an API mid-request and takes MongoDB
//! down for 10 s. Then it checks the README's delivery contract: every
//! acknowledged send stored exactly once, and every receiver got every
//! stored message of its conversation, once each, in strictly increasing
//! `seq`. It prints the figures.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::cluster::TestCluster;
use crate::common::{business, node_dir};
use omnibiz_domain::ConversationId;
use omnibiz_store::MessageQuery;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

const RECEIVERS: usize = 20;

/// REST sends per second (`OMNIBIZ_CHAOS_RATE`, default 100).
fn rate_per_sec() -> u64 {
    std::env::var("OMNIBIZ_CHAOS_RATE").ok().and_then(|r| r.parse().ok()).filter(|r| *r > 0).unwrap_or(100)
}

/// Seconds of load (`OMNIBIZ_CHAOS_SECS`, at least and by default 36, the
/// fault timeline): 36 s in CI (≈ 3 700 messages), 100 for ≈ 10 000.
fn load_secs() -> u64 {
    std::env::var("OMNIBIZ_CHAOS_SECS").ok().and_then(|r| r.parse().ok()).unwrap_or(36).max(36)
}

/// What the REST load saw.
#[derive(Default)]
struct RestLoad {
    /// clientMessageId → (conversation, seq) of the acknowledged message.
    acked: HashMap<String, (String, i64)>,
    /// Failed attempts by status code or transport error (retried).
    failures: HashMap<String, usize>,
    retries: usize,
    /// Codes of 503 answers (the API says why).
    unavailable_codes: BTreeSet<String>,
}

async fn send_until_acked(
    http: reqwest::Client,
    apis: Arc<Vec<String>>,
    token: String,
    conv: String,
    cmid: String,
    load: Arc<Mutex<RestLoad>>,
    start_api: usize,
) {
    let mut api = start_api;
    loop {
        let res = http
            .post(format!("{}/api/messages/send", apis[api % apis.len()]))
            .bearer_auth(&token)
            .json(&json!({"conversationId": conv, "content": format!("rest {cmid}"), "clientMessageId": cmid}))
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        let failure = match res {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or_default();
                let seq = body["message"]["seq"].as_i64().unwrap_or(-1);
                load.lock().expect("lock").acked.insert(cmid, (conv, seq));
                return;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                if status == 503 {
                    let code = body["code"].as_str().unwrap_or("none").to_owned();
                    load.lock().expect("lock").unavailable_codes.insert(code);
                }
                format!("HTTP {status}")
            }
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "connection".to_owned(),
        };
        {
            let mut l = load.lock().expect("lock");
            *l.failures.entry(failure).or_default() += 1;
            l.retries += 1;
        }
        api += 1; // the other API
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `tests/node/chaos.mjs` process and its stdin/stdout protocol.
struct NodeClients {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl NodeClients {
    fn start(gateways: &str, clients: Vec<Value>, sender: Option<Value>) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg("chaos.mjs")
            .current_dir(node_dir("socket.io-client"))
            .env("GATEWAYS", gateways)
            .env("CLIENTS", Value::Array(clients).to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(s) = sender {
            cmd.env("SENDER", s.to_string());
        }
        let mut child = cmd.spawn().expect("node chaos.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { _child: child, stdin, lines }
    }

    /// Stops the socket sender (after what it has in flight is acknowledged).
    async fn stop(&mut self) {
        self.stdin.write_all(b"stop\n").await.expect("stop");
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await.expect("stopped");
        assert_eq!(line.expect("read").as_deref(), Some("stopped"));
    }

    /// Waits until the receivers caught up to `last` (or 20 s), then their report.
    async fn report(&mut self, last: &Value) -> Value {
        self.stdin.write_all(format!("{last}\n").as_bytes()).await.expect("drain");
        let line = tokio::time::timeout(Duration::from_secs(40), self.lines.next_line()).await.expect("report");
        serde_json::from_str(line.expect("read").as_deref().unwrap_or("{}")).expect("report json")
    }
}

/// Every stored message of a conversation: seq → clientMessageId.
async fn stored(store: &Arc<dyn omnibiz_store::Store>, conv: &str) -> Vec<(i64, Option<String>)> {
    let id: ConversationId = conv.parse().expect("id");
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_messages(&MessageQuery {
                conversation_id: id,
                before: None,
                after: Some(after),
                limit: 500,
                include_private: true,
            })
            .await
            .expect("list messages");
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page.iter().map(|m| (m.seq, m.client_message_id.clone())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_lost_duplicated_or_out_of_order_under_faults() {
    let t0 = Instant::now();
    let mut c = TestCluster::start(2, 2, &[("OMNIBIZ_SEND_RATE", "100")]).await;
    let store = c.store().await;
    let b = business(&store, "Chaos", RECEIVERS).await;
    let http = reqwest::Client::new();
    let apis = Arc::new(c.api_urls());
    let mut convs = Vec::new();
    for cust in &b.customers {
        convs.push(crate::common::cluster::open_over_http(&apis[0], &b.owner_token, &cust.id.to_hex()).await);
    }
    // The slow consumer stalls its own event loop: it runs in a process of its own.
    let spec =
        |i: usize| json!({"token": b.customer_tokens[i], "conversationId": convs[i], "slow": i == RECEIVERS - 1});
    let gateways = c.gateway_urls().join(",");
    let sender = json!({"token": b.owner_token, "conversationId": convs[0]});
    let mut main_clients = NodeClients::start(&gateways, (0..RECEIVERS - 1).map(spec).collect(), Some(sender));
    let mut slow_client = NodeClients::start(&gateways, vec![spec(RECEIVERS - 1)], None);
    tokio::time::sleep(Duration::from_secs(2)).await; // receivers connect and join

    // Steady REST load, each send retried until acknowledged.
    let load = Arc::new(Mutex::new(RestLoad::default()));
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (http, apis, load, sending, in_flight) =
            (http.clone(), Arc::clone(&apis), Arc::clone(&load), Arc::clone(&sending), Arc::clone(&in_flight));
        let (token, convs) = (b.owner_token.clone(), convs.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate_per_sec()));
            let mut n = 0usize;
            let mut tasks = Vec::new();
            while sending.load(Ordering::Relaxed) {
                tick.tick().await;
                let conv = convs[n % convs.len()].clone();
                let (http, apis, load, token, in_flight) =
                    (http.clone(), Arc::clone(&apis), Arc::clone(&load), token.clone(), Arc::clone(&in_flight));
                in_flight.fetch_add(1, Ordering::Relaxed);
                tasks.push(tokio::spawn(async move {
                    send_until_acked(http, apis, token, conv, format!("rest-{n}"), load, n).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                }));
                n += 1;
            }
            for t in tasks {
                let _ = t.await;
            }
            n
        })
    };

    // The faults, on a timeline from the start of the load.
    let load_start = Instant::now();
    let at = |s: u64| async move {
        let until = load_start + Duration::from_secs(s);
        tokio::time::sleep_until(until.into()).await;
    };
    let mut timeline = Vec::new();
    let mut note = |what: &str| timeline.push(format!("{:>5.1}s {what}", load_start.elapsed().as_secs_f64()));
    at(4).await;
    c.gateways[0].kill().await;
    note("SIGKILL gateway-0");
    at(6).await;
    c.start_gateway(0).await;
    note("gateway-0 back");
    at(9).await;
    c.redis.kill().await;
    note("SIGKILL redis");
    at(10).await;
    c.start_redis().await;
    note("redis back (empty)");
    at(14).await;
    c.apis[0].kill().await;
    note("SIGKILL api-0 (mid-request)");
    at(16).await;
    c.start_api(0).await;
    note("api-0 back");
    at(19).await;
    c.mongo.kill().await;
    note("SIGKILL mongodb");
    at(29).await;
    c.start_mongo().await;
    note("mongodb back after 10 s");
    at(load_secs()).await;
    sending.store(false, Ordering::Relaxed);
    let rest_sent = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap_or_else(|_| {
            panic!("REST sends still unacknowledged 60 s after the load stopped: {}", in_flight.load(Ordering::Relaxed))
        })
        .expect("sender");
    note("load stopped, every REST send acknowledged");

    // The socket sender finishes; then receivers catch up to what is stored.
    main_clients.stop().await;
    slow_client.stop().await;
    let mut per_conv: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
    for conv in &convs {
        per_conv.insert(conv.clone(), stored(&store, conv).await);
    }
    let last: HashMap<&String, i64> = per_conv.iter().map(|(k, v)| (k, v.last().map_or(0, |(s, _)| *s))).collect();
    let last = json!({"lastSeq": last});
    let (mut report, slow_report) = tokio::join!(main_clients.report(&last), slow_client.report(&last));
    let slow_receivers = slow_report["receivers"].as_array().cloned().unwrap_or_default();
    report["receivers"].as_array_mut().expect("receivers").extend(slow_receivers);

    // Exactly-once storage: every acknowledged send once, nothing unacknowledged stored.
    let load = std::mem::take(&mut *load.lock().expect("lock"));
    let mut stored_ids: HashMap<String, usize> = HashMap::new();
    let mut stored_total = 0;
    for msgs in per_conv.values() {
        for (_, cmid) in msgs {
            stored_total += 1;
            *stored_ids.entry(cmid.clone().expect("every load message has a clientMessageId")).or_default() += 1;
        }
    }
    let dup_stored: Vec<_> = stored_ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup_stored.is_empty(), "stored twice: {dup_stored:?}");
    assert_eq!(load.acked.len(), rest_sent, "every REST send acknowledged");
    let mut not_stored: Vec<(&String, &(String, i64))> =
        load.acked.iter().filter(|(cmid, _)| stored_ids.get(*cmid) != Some(&1)).collect();
    not_stored.sort();
    assert!(not_stored.is_empty(), "{} acknowledged REST sends not stored once: {not_stored:?}", not_stored.len());
    let socket_acked = report["sender"]["acked"].as_array().expect("sender acked").len();
    for a in report["sender"]["acked"].as_array().expect("acked") {
        let cmid = a["clientMessageId"].as_str().expect("cmid");
        assert_eq!(stored_ids.get(cmid), Some(&1), "socket send {cmid} acknowledged but not stored once");
    }
    assert_eq!(stored_total, rest_sent + socket_acked, "nothing stored that was not acknowledged");

    // Every receiver: every stored message of its conversation, once, in increasing seq.
    let mut lost = 0;
    let mut duplicated = 0;
    let mut out_of_order = 0;
    let mut reconnects = 0;
    let mut delivered = 0;
    for r in report["receivers"].as_array().expect("receivers") {
        let conv = r["conversationId"].as_str().expect("conv");
        let seqs: Vec<i64> = r["seqs"].as_array().expect("seqs").iter().filter_map(Value::as_i64).collect();
        delivered += seqs.len();
        reconnects += r["reconnects"].as_u64().unwrap_or(0);
        let mut seen = BTreeSet::new();
        let mut highest = 0;
        for s in &seqs {
            if !seen.insert(*s) {
                duplicated += 1;
            } else if *s < highest {
                out_of_order += 1;
            }
            highest = highest.max(*s);
        }
        let want: BTreeSet<i64> = per_conv[conv].iter().map(|(s, _)| *s).collect();
        let missing: Vec<&i64> = want.difference(&seen).collect();
        if !missing.is_empty() {
            eprintln!("receiver of {conv} (slow: {}) missed seqs {missing:?}", r["slow"]);
        }
        lost += missing.len();
    }
    let slow =
        report["receivers"].as_array().and_then(|a| a.iter().find(|r| r["slow"] == true)).cloned().unwrap_or_default();
    println!("chaos run, {:.0} s in all:", t0.elapsed().as_secs_f64());
    for t in &timeline {
        println!("  {t}");
    }
    println!(
        "  stored {stored_total} messages ({rest_sent} REST, {socket_acked} socket) in {} conversations; \
         REST retries {} {:?}; 503 codes {:?}; socket sender errors {} message_error {}",
        convs.len(),
        load.retries,
        load.failures,
        load.unavailable_codes,
        report["sender"]["errorCodes"],
        report["sender"]["messageErrors"],
    );
    println!(
        "  receivers: {delivered} deliveries, {reconnects} reconnects (slow consumer: {}); \
         lost {lost}, duplicated {duplicated}, out of order {out_of_order}",
        slow["reconnects"]
    );
    assert_eq!((lost, duplicated, out_of_order), (0, 0, 0), "the delivery contract held");
    // The outage was visible and explained: 503 with a code over REST, errors on the socket.
    assert!(
        load.unavailable_codes.contains("SERVICE_UNAVAILABLE"),
        "REST answered 503 SERVICE_UNAVAILABLE: {:?}",
        load.failures
    );
    assert!(report["sender"]["messageErrors"].as_u64() > Some(0), "the socket sender got message_error: {report}");
    // Everything recovered by itself: api-1 and gateway-1 were never restarted.
    for url in [&c.apis[1], &c.gateways[1]].map(|p| format!("{}/readyz", p.url())) {
        let ok = reqwest::get(&url).await.is_ok_and(|r| r.status().is_success());
        assert!(ok, "{url} ready after the faults");
    }
}
