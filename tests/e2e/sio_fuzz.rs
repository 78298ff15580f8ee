//! A Socket.IO fuzzer against `omnibiz serve` running as a process: 30
//! clients each throw a seeded random mix of malformed packets, wrong
//! payload types, deeply nested and huge payloads, bogus binary packets,
//! unknown events, floods and hundreds of joins — reconnecting whenever the
//! server closes them, as it should for a broken packet. Afterwards the
//! process is alive, serves a normal client, logged no panic, and its
//! memory came back down.

use std::time::Duration;

use crate::common::sio::SioClient;
use crate::common::{SECRET, business};
use omnibiz_store::Store;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn garbage(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..200);
    (0..len).map(|_| char::from(rng.random_range(32u8..127))).collect()
}

fn random_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..7) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!(garbage(rng)),
        3 => json!([garbage(rng), rng.random::<f64>(), {"conversationId": rng.random::<u32>()}]),
        4 => json!({"conversationId": garbage(rng), "content": rng.random::<bool>(), "lastSeq": "x"}),
        5 => json!({"conversationId": "0".repeat(24), "message": {"nested": [1, 2, {"a": null}]}}),
        _ => json!({"conversationId": format!("{:024x}", rng.random::<u128>() >> 32), "seq": -1, "messageId": []}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_socket_io_input_crashes_nothing_and_memory_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (b, conv) = {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
            omnibiz_store::sqlite::SqliteStore::open(&dir.path().join("omnibiz.db")).expect("sqlite"),
        );
        let b = business(&store, "Fuzz", 2).await;
        let who = omnibiz_store::Participants::of(&b.owner, &b.customers[0]);
        let (conv, _) = store.get_or_create_conversation(&who, chrono::Utc::now()).await.expect("conversation");
        (b, conv.id.to_hex())
    };
    let log = dir.path().join("serve.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"))
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("JWT_SECRET", SECRET)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", "warn")
        // This tests what the server does with bad input, not its connection
        // limits (tests/e2e/limits.rs): the fuzz clients reconnect a lot.
        .env("OMNIBIZ_CONNECT_RATE", "100000")
        .env("OMNIBIZ_CONNECT_RATE_PER_IP", "100000")
        .env_remove("MONGODB_URI")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let pid = child.id().expect("pid");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let banner = loop {
        let line = lines.next_line().await.expect("read").expect("banner");
        if line.contains("listening on") {
            break line;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = banner.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_owned();
    let http = reqwest::Client::new();

    // Warm up with ordinary traffic, then take the baseline.
    let mut warm = SioClient::connect(&base, Some(&b.customer_tokens[0])).await.expect("connect");
    assert_eq!(warm.call("join_conversation", json!(conv)).await["ok"], true);
    for i in 0..20 {
        assert_eq!(
            warm.call("send_message", json!({"conversationId": conv, "message": format!("warm {i}")})).await["ok"],
            true
        );
    }
    warm.disconnect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_kib(pid);

    let tokens = [b.owner_token.clone(), b.customer_tokens[0].clone(), b.customer_tokens[1].clone()];
    let mut tasks = Vec::new();
    for c in 0..30u64 {
        let (base, conv, token) = (base.clone(), conv.clone(), tokens[c as usize % tokens.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(20_261_202 + c);
            let mut closed_by_server = 0;
            let mut client = SioClient::connect(&base, Some(&token)).await.expect("connect");
            for _ in 0..40 {
                if client.is_closed() {
                    closed_by_server += 1;
                    client = SioClient::connect(&base, Some(&token)).await.expect("reconnect");
                }
                match rng.random_range(0..11) {
                    0 => client.raw(&garbage(&mut rng)),
                    1 => client.raw(&format!("42{}", garbage(&mut rng))),
                    2 => client.emit("send_message", random_value(&mut rng)),
                    3 => client.raw(&format!("42[\"send_message\",{}]", nested(rng.random_range(100..5000)))),
                    4 => client.emit(
                        "send_message",
                        json!({"conversationId": conv, "content": "x".repeat(rng.random_range(5001..400_000))}),
                    ),
                    5 => client.raw(&format!(
                        "45{}-[\"send_message\",{{\"_placeholder\":true,\"num\":0}}]",
                        rng.random_range(1..20)
                    )),
                    6 => client.emit(&garbage(&mut rng), random_value(&mut rng)),
                    7 => {
                        for _ in 0..300 {
                            client.emit("typing_start", json!({"conversationId": conv}));
                        }
                    }
                    8 => {
                        for _ in 0..200 {
                            client.emit("join_conversation", json!(format!("{:024x}", rng.random::<u128>() >> 32)));
                        }
                    }
                    9 => client.raw(&format!("{}{}", rng.random_range(0..10), random_value(&mut rng))),
                    _ => {
                        client.emit("join_conversation", random_value(&mut rng));
                        client.emit("mark_read", random_value(&mut rng));
                        client.emit("message_delivered", random_value(&mut rng));
                        client.emit("edit_message", random_value(&mut rng));
                        client.emit("delete_message", random_value(&mut rng));
                        client.emit("refresh_token", random_value(&mut rng));
                    }
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
            }
            client.disconnect();
            closed_by_server
        }));
    }
    let mut closed = 0;
    for t in tasks {
        closed += t.await.expect("fuzz client");
    }
    let during = rss_kib(pid);

    // Still alive and serving.
    assert!(child.try_wait().expect("wait").is_none(), "the server process exited");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.expect("healthz").status(), 200);
    // The fuzzers emptied their principals' rate-limit buckets; they refill within 2 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut normal = SioClient::connect(&base, Some(&b.owner_token)).await.expect("a normal client still connects");
    assert_eq!(normal.call("join_conversation", json!(conv)).await["ok"], true);
    let ack = normal.call("send_message", json!({"conversationId": conv, "message": "still here"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    normal.disconnect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    println!(
        "socket.io fuzz: 30 clients x 40 actions, {closed} connections closed by the server for bad input; \
         RSS baseline {baseline} KiB, peak sample {during} KiB, after {after} KiB"
    );
    assert!(!logged.contains("panicked"), "the server panicked:\n{logged}");
    assert!(after < baseline + 64 * 1024, "memory came back down: {baseline} KiB -> {after} KiB");
    child.kill().await.expect("kill");
}
