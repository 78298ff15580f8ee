//! Polling without sticky sessions: three gateway processes behind a
//! balancer that sends every request — and every websocket upgrade — to the
//! next gateway in turn (`tests/node/rr-proxy.mjs`). The official Node
//! socket.io-client runs the seed's flow with `transports: ["polling"]` and
//! with its default (polling, then websocket); then the gateway holding a
//! polling client's session is killed mid-conversation, and the client
//! reconnects through the balancer and recovers by `seq`: every message
//! once, in order.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    Backend, Business, TestApp, becomes_ready, business, node_dir, omnibiz_process_banner, open, seed_flow, settings,
    spawn_with,
};
use omnibiz::app::Target;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

async fn first_json_line(child: &mut tokio::process::Child) -> Value {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.expect("a line").expect("read");
    let line = line.expect("a first line");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_clients_need_no_affinity_and_survive_a_gateway_dying() {
    let dir = node_dir("socket.io-client");
    let tmp = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_noaffinity_{}", bson::oid::ObjectId::new());
    let api = spawn_with(Backend::Mongo, settings(Backend::Mongo, tmp.path(), &db), Target::Api, tmp).await;
    let b = business(&api.store, "Sticky", 1).await;
    let conv = open(&api, &b, 0).await;

    let mut gateways = Vec::new();
    for _ in 0..3 {
        let (child, base, banner) = omnibiz_process_banner("gateway", &db, &[]).await;
        let node = banner.split("node: ").nth(1).and_then(|r| r.split(')').next()).expect("node in banner").to_owned();
        gateways.push((Some(child), base, node));
    }
    for (_, base, _) in &gateways {
        assert!(becomes_ready(base).await, "{base} ready");
    }
    let backends: Vec<&str> = gateways.iter().map(|(_, b, _)| b.as_str()).collect();
    let mut proxy = tokio::process::Command::new("node")
        .arg("rr-proxy.mjs")
        .current_dir(&dir)
        .env("BACKENDS", backends.join(","))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("proxy");
    let port = first_json_line(&mut proxy).await["port"].as_u64().expect("port");
    let lb = format!("http://127.0.0.1:{port}");

    // The seed's flow through the balancer, on polling only and with the upgrade.
    for mode in ["polling", "upgrade"] {
        assert_eq!(seed_flow(&lb, &b, &conv, mode).await["ok"], true, "{mode}");
    }
    let stats: Vec<u64> = reqwest::get(format!("{lb}/__stats")).await.expect("stats").json().await.expect("json");
    assert!(stats.iter().all(|&n| n > 0), "every gateway took requests: {stats:?}");

    failover_through(&lb, &api, &b, &conv, &mut gateways).await;
    api.finish().await;
}

/// A gateway process of a test: the child (taken when killed), its base URL, its node id.
pub(crate) type Gateway = (Option<tokio::process::Child>, String, String);

/// A polling customer behind the balancer at `lb`; the gateway holding its
/// session is killed between two batches of REST sends. The client
/// reconnects through the balancer and recovers by `seq`: every message
/// once, in order.
pub(crate) async fn failover_through(lb: &str, api: &TestApp, b: &Business, conv: &str, gateways: &mut [Gateway]) {
    let dir = node_dir("socket.io-client");
    // A polling client, then the gateway holding its session dies.
    let (_, before) = api.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    let start = before["conversation"]["lastSeq"].as_i64().expect("lastSeq");
    let mut client = tokio::process::Command::new("node")
        .arg("failover.mjs")
        .current_dir(&dir)
        .env("BASE", lb)
        .env("TOKEN", &b.customer_tokens[0])
        .env("CONV", conv)
        // The join replays the `start` earlier messages, then 10 new ones.
        .env("EXPECT", (start + 10).to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("client");
    let out = client.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let ready: Value =
        serde_json::from_str(&lines.next_line().await.expect("read").expect("ready line")).expect("json");
    let sid = ready["sid"].as_str().expect("sid");
    let owner_node = sid.split('.').next().expect("node part");
    for i in 0..5 {
        let (s, _) = api.send(&b.owner_token, conv, &format!("before the crash {i}")).await;
        assert_eq!(s, reqwest::StatusCode::CREATED);
    }
    let victim = gateways.iter_mut().find(|(_, _, n)| n == owner_node).expect("the sid names a gateway");
    victim.0.take().expect("child").kill().await.expect("kill the owner");
    for i in 0..5 {
        let (s, _) = api.send(&b.owner_token, conv, &format!("after the crash {i}")).await;
        assert_eq!(s, reqwest::StatusCode::CREATED);
    }
    let report = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            let line = lines.next_line().await.expect("read").expect("a report line");
            let v: Value = serde_json::from_str(&line).expect("json");
            if v.get("seqs").is_some() {
                return v;
            }
        }
    })
    .await
    .expect("the client reported");
    let seqs: Vec<i64> = report["seqs"].as_array().expect("seqs").iter().filter_map(Value::as_i64).collect();
    let fresh: Vec<i64> = seqs.iter().copied().filter(|&s| s > start).collect();
    assert_eq!(fresh, (start + 1..=start + 10).collect::<Vec<_>>(), "each once, in order: {report}");
    assert!(report["reconnects"].as_u64().is_some_and(|n| n >= 1), "it had to reconnect: {report}");
}
