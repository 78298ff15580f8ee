//! Operations: graceful drain of a gateway under traffic (a real process and
//! a real SIGTERM), a second signal cutting a drain short, and the
//! dashboard/ServiceMonitor using only metric names the binaries export.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, spawn_with};
use omnibiz::app::Target;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_a_gateway_and_clients_lose_nothing_on_the_other() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_drain_{}", bson::oid::ObjectId::new());
    let s = crate::common::settings(Backend::Mongo, dir.path(), &db);
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let other = spawn_with(Backend::Mongo, s, Target::Gateway, Arc::clone(&dir)).await;
    let b = business(&api.store, "Drain", 8).await;
    let mut convs = Vec::new();
    for i in 0..b.customers.len() {
        convs.push(open(&api, &b, i).await);
    }
    let (mut child, base) =
        crate::common::gateway_process(&db, &[("OMNIBIZ_DRAIN_SECS", "2"), ("OMNIBIZ_SHUTDOWN_GRACE_SECS", "6")]).await;
    let mut clients = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let mut c = SioClient::connect(&base, Some(&b.customer_tokens[i])).await.expect("connect");
        assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
        clients.push(c);
    }
    // Traffic from the owner (via REST) to every conversation, throughout.
    let sender = {
        let (api_base, token, convs) = (api.base.clone(), b.owner_token.clone(), convs.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for round in 0..40 {
                for conv in &convs {
                    let r = http
                        .post(format!("{api_base}/api/messages/send"))
                        .bearer_auth(&token)
                        .json(&json!({"conversationId": conv, "content": format!("round {round}")}))
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("pid").to_string();
    let term = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(term.success());
    let sent_at = tokio::time::Instant::now();
    // Readiness fails at once while the drain proceeds.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = reqwest::get(format!("{base}/readyz")).await.map(|r| r.status());
    assert!(
        ready.as_ref().is_err() || ready.as_ref().is_ok_and(|s| *s == reqwest::StatusCode::SERVICE_UNAVAILABLE),
        "{ready:?}"
    );

    // When did each client's connection close? (Poll all of them together.)
    let mut close_times: Vec<Option<Duration>> = vec![None; clients.len()];
    while close_times.iter().any(Option::is_none) {
        for (i, c) in clients.iter().enumerate() {
            if close_times[i].is_none() && c.is_closed() {
                close_times[i] = Some(sent_at.elapsed());
            }
        }
        assert!(sent_at.elapsed() < Duration::from_secs(10), "clients were never moved off: {close_times:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut close_times: Vec<Duration> = close_times.into_iter().flatten().collect();
    // Each client reconnects to the other gateway and rejoins with the last seq it saw.
    let mut seen: Vec<HashSet<i64>> = vec![HashSet::new(); clients.len()];
    let mut moved = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut last = 0;
        while let Some(m) = c.try_expect("message_received", Duration::from_millis(20)).await {
            let seq = m["seq"].as_i64().expect("seq");
            assert!(seen[i].insert(seq), "duplicate before the move");
            last = last.max(seq);
        }
        let mut again = SioClient::connect(&other.base, Some(&b.customer_tokens[i])).await.expect("reconnect");
        let ack = again.call("join_conversation", json!({"conversationId": convs[i], "lastSeq": last})).await;
        assert_eq!(ack["ok"], true, "{ack}");
        moved.push((i, again));
    }
    let status =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "clean exit: {status}");
    assert!(sent_at.elapsed() < Duration::from_secs(8), "exited within the grace period");
    close_times.sort();
    let spread = *close_times.last().expect("closes") - close_times[0];
    assert!(spread >= Duration::from_millis(500), "disconnects spread over the window: {close_times:?}");

    sender.await.expect("sender");
    for (i, mut c) in moved {
        // After the sender is done, every conversation holds 40 messages: each exactly once.
        while seen[i].len() < 40 {
            let m = c.expect("message_received").await;
            assert!(seen[i].insert(m["seq"].as_i64().expect("seq")), "duplicate after the move");
        }
        assert_eq!(seen[i], (1..=40).collect::<HashSet<i64>>(), "client {i}: no gap");
        c.disconnect();
    }
    other.stop().await;
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_signal_ends_a_long_drain_at_once() {
    let api = crate::common::spawn_app(Backend::Mongo).await;
    let db = api.settings.mongodb_database.clone().expect("a fresh database per test");
    let b = business(&api.store, "Impatient", 3).await;
    let (mut child, base) =
        crate::common::gateway_process(&db, &[("OMNIBIZ_DRAIN_SECS", "30"), ("OMNIBIZ_SHUTDOWN_GRACE_SECS", "40")])
            .await;
    let mut clients = Vec::new();
    for token in &b.customer_tokens {
        clients.push(SioClient::connect(&base, Some(token)).await.expect("connect"));
    }
    let pid = child.id().expect("pid").to_string();
    let interrupt = || std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    assert!(interrupt().success());
    // The first signal starts a 30 s drain: one client goes at once, the others later.
    let closed = || clients.iter().filter(|c| c.is_closed()).count();
    assert!(
        crate::common::eventually(100, Duration::from_millis(20), || async { closed() > 0 }).await,
        "the drain never started"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().expect("try_wait").is_none(), "the first signal must drain, not exit");
    assert_eq!(closed(), 1, "disconnects are spread over the window");
    assert!(interrupt().success());
    let status =
        tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exits at once").expect("wait");
    assert_eq!(status.code(), Some(130), "{status}");
    api.finish().await;
}

/// The allocator's settings compiled in by `.cargo/config.toml` reach the
/// binary: its one background purge thread runs (without them jemalloc
/// starts none and an idle gateway keeps the pages its handshakes freed).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_runs_one_allocator_purge_thread() {
    let db = format!("omnibiz_alloc_{}", bson::oid::ObjectId::new());
    let (mut child, _base) = crate::common::gateway_process(&db, &[]).await;
    let pid = child.id().expect("pid");
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    child.kill().await.expect("kill");
    let purgers = names.iter().filter(|n| n.starts_with("jemalloc_bg")).count();
    assert_eq!(purgers, 1, "threads: {names:?}");
}

/// The thread-cache caps of `.cargo/config.toml` are in the binary: jemalloc
/// prints its options at exit when asked (`stats_print`, which the run-time
/// `_RJEM_MALLOC_CONF` adds to the compiled-in settings), and every setting
/// it prints has the configured value. Without the caps an idle worker keeps
/// what the last burst of handshakes freed (docs/bench-notes.md).
#[tokio::test]
async fn the_binary_carries_the_configured_allocator_caches() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(root.join(".cargo/config.toml")).expect(".cargo/config.toml");
    let conf = config
        .lines()
        .find_map(|l| l.strip_prefix("JEMALLOC_SYS_WITH_MALLOC_CONF = "))
        .expect("the allocator's settings")
        .trim_matches('"');
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"))
        .arg("--help")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .await
        .expect("run omnibiz --help");
    let stats = String::from_utf8_lossy(&out.stderr);
    let mut checked = Vec::new();
    for (key, value) in conf.split(',').filter_map(|kv| kv.split_once(':')) {
        let Some(line) = stats.lines().find_map(|l| l.trim().strip_prefix(&format!("opt.{key}: "))) else { continue };
        assert_eq!(line.split_whitespace().next(), Some(value), "opt.{key}");
        checked.push(key);
    }
    for key in ["tcache_max", "tcache_nslots_small_max", "tcache_nslots_large", "dirty_decay_ms"] {
        assert!(checked.contains(&key), "{key} not checked; jemalloc printed:\n{stats}");
    }
}

/// Metric names referenced by the dashboard and the ServiceMonitor.
fn referenced_metrics() -> HashSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash = std::fs::read_to_string(root.join("k8s/base/dashboards/omnibiz.json")).expect("dashboard");
    let sm = std::fs::read_to_string(root.join("k8s/base/servicemonitor.yaml")).expect("servicemonitor");
    let dash: Value = serde_json::from_str(&dash).expect("dashboard JSON");
    let mut text = String::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            text.push_str(t["expr"].as_str().expect("expr"));
            text.push(' ');
        }
    }
    text.push_str(&sm);
    let prefixes = ["http_", "gateway_", "bus_", "store_", "messages_"];
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| prefixes.iter().any(|p| w.starts_with(p)))
        .map(|w| w.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_and_servicemonitor_use_exported_metric_names() {
    let (api, gw) = crate::common::api_and_gateway("metrics").await;
    let b = business(&api.store, "Metrics", 1).await;
    let conv = open(&api, &b, 0).await;
    let mut c = SioClient::connect(&gw.base, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
    api.send(&b.owner_token, &conv, "hello").await;
    c.expect("message_received").await;
    c.call("send_message", json!({"conversationId": conv, "message": "hi"})).await;
    let mut exported = String::new();
    for app in [&api, &gw] {
        exported += &app.http.get(app.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
    }
    let names: HashSet<&str> = exported
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| n.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum"))
        .collect();
    let wanted = referenced_metrics();
    assert!(wanted.len() >= 10, "found the references: {wanted:?}");
    let missing: Vec<&String> = wanted.iter().filter(|w| !names.contains(w.as_str())).collect();
    assert!(missing.is_empty(), "dashboard/ServiceMonitor use names nobody exports: {missing:?}");
    for (name, _, _) in omnibiz_service::telemetry::METRICS {
        assert!(names.contains(name), "{name} is documented but not exported");
    }
    // The connect above was timed, into buckets that reach the 45 s deadline.
    let handshakes = exported
        .lines()
        .find_map(|l| l.strip_prefix("gateway_handshake_duration_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(handshakes.is_some_and(|n| n >= 1.0), "handshake count: {handshakes:?}");
    assert!(exported.contains("gateway_handshake_duration_seconds_bucket{le=\"45\"}"), "the deadline's bucket");
    c.disconnect();
    gw.stop().await;
    api.finish().await;
}

/// Every series the Grafana dashboard queries is there from the first
/// scrape of a fresh process (zero-valued), not only after the first event:
/// a new pod's panels show 0, not "no data".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_series_exist_from_the_first_scrape() {
    let app = crate::common::spawn_app(Backend::Sqlite).await;
    let scrape = app.http.get(app.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
    let names: HashSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| n.trim_end_matches("_bucket").trim_end_matches("_count").trim_end_matches("_sum"))
        .collect();
    let mut missing: Vec<String> = referenced_metrics().into_iter().filter(|w| !names.contains(w.as_str())).collect();
    missing.sort();
    assert!(missing.is_empty(), "not in the first scrape: {missing:?}");
    app.finish().await;
}
