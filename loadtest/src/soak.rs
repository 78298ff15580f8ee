//! `soak`: long mixed load on an `api` and its gateways — customers' sockets
//! that disconnect and come back (rejoining with `lastSeq`) every 20–40 s,
//! owners' REST sends at a steady rate, typing, read receipts — reporting per
//! window the servers' memory and the delivery latency, and at the end every
//! acknowledged message that a client never received.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Incoming};
use crate::procstat;
use crate::tokens::Pair;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Gateways; a client alternates between them on each reconnect.
    pub urls: Vec<String>,
    /// The REST API base URL (sends).
    pub api: String,
    /// Conversations (one customer socket each, one owner sending).
    pub pairs: usize,
    /// REST sends per second, over all conversations.
    pub rate: f64,
    pub duration: Duration,
    /// Length of one reporting window.
    pub window: Duration,
    /// Servers whose memory to sample.
    pub pids: Vec<u32>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Default)]
struct Seen {
    seqs: BTreeSet<i64>,
    duplicates: u64,
}

struct Shared {
    stop: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    reconnects: AtomicU64,
}

/// One customer: connect, join with `lastSeq`, read, type, mark read, and
/// leave and come back every 20–40 s, until told to stop.
async fn customer(i: usize, pair: Pair, urls: Vec<String>, shared: Arc<Shared>, seen: Arc<Mutex<Seen>>) {
    let mut gw = i % urls.len();
    let mut first = true;
    while !shared.stop.load(Ordering::Relaxed) {
        if !first {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let Ok(mut ws) = client::connect(&urls[gw], &pair.customer, None).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        gw = (gw + 1) % urls.len();
        let last = seen.lock().map(|s| s.seqs.last().copied().unwrap_or(0)).unwrap_or(0);
        let joined_at = now_ms();
        let join = json!({"conversationId": pair.conversation, "lastSeq": last});
        if ws.send(client::event("join_conversation", &join, None)).await.is_err() {
            continue;
        }
        let stay = Duration::from_millis(20_000 + (i as u64 * 7919) % 20_000);
        let until = Instant::now() + stay;
        let mut typing = tokio::time::interval(Duration::from_secs(5));
        let mut received = 0u64;
        loop {
            if shared.stop.load(Ordering::Relaxed) || Instant::now() >= until {
                let _ = ws.send(Message::text("41")).await;
                break;
            }
            tokio::select! {
                msg = ws.next() => {
                    let Some(Ok(m)) = msg else { break };
                    match client::classify(&m) {
                        Incoming::Ping => { let _ = ws.send(Message::text("3")).await; }
                        Incoming::Event(body) if body.starts_with("[\"message_received\"") => {
                            let Ok(Value::Array(a)) = serde_json::from_str::<Value>(body) else { continue };
                            let msg = &a[1];
                            let seq = msg["seq"].as_i64().unwrap_or(0);
                            let sent = msg["content"].as_str().and_then(|c| c.strip_prefix("soak ")).and_then(|t| t.parse::<u64>().ok());
                            let fresh = {
                                let mut s = seen.lock().expect("seen");
                                let fresh = s.seqs.insert(seq);
                                if !fresh { s.duplicates += 1; }
                                fresh
                            };
                            // Live deliveries only: replays after a rejoin are not latency.
                            if let Some(sent) = sent.filter(|t| fresh && *t >= joined_at) {
                                let ms = now_ms().saturating_sub(sent).max(1);
                                let _ = shared.latency.lock().expect("latency").record(ms);
                            }
                            received += 1;
                            if received.is_multiple_of(10) {
                                let read = json!({"conversationId": pair.conversation, "seq": seq});
                                let _ = ws.send(client::event("mark_read", &read, None)).await;
                            }
                        }
                        Incoming::Closed => break,
                        _ => {}
                    }
                }
                _ = typing.tick() => {
                    let t = json!({"conversationId": pair.conversation});
                    let _ = ws.send(client::event("typing_start", &t, None)).await;
                }
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn run(pairs: &[Pair], plan: &Plan) -> anyhow::Result<Value> {
    anyhow::ensure!(!plan.urls.is_empty(), "give at least one gateway --url");
    let n = plan.pairs.min(pairs.len());
    anyhow::ensure!(n > 0, "no conversations to use");
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        latency: Mutex::new(Histogram::new_with_bounds(1, 120_000, 3)?),
        reconnects: AtomicU64::new(0),
    });
    let seen: Vec<Arc<Mutex<Seen>>> = (0..n).map(|_| Arc::default()).collect();
    let mut clients = Vec::new();
    for (i, pair) in pairs[..n].iter().enumerate() {
        let (urls, shared, seen) = (plan.urls.clone(), Arc::clone(&shared), Arc::clone(&seen[i]));
        clients.push(tokio::spawn(customer(i, pair.clone(), urls, shared, seen)));
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // everyone joined

    // Owners send over REST at a steady rate; each send retried until acknowledged.
    let acked: Arc<Mutex<HashMap<usize, BTreeSet<i64>>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate.max(0.1)));
    let mut windows = Vec::new();
    let mut window_start = Instant::now();
    let mut window_sent = 0u64;
    let mut k = 0usize;
    let mut senders = Vec::new();
    while start.elapsed() < plan.duration {
        tick.tick().await;
        let i = k % n;
        let (http, api, pair, acked, sent) =
            (http.clone(), plan.api.clone(), pairs[i].clone(), Arc::clone(&acked), Arc::clone(&sent));
        let cmid = format!("soak-{k}");
        senders.push(tokio::spawn(async move {
            for _ in 0..20 {
                let body = json!({"conversationId": pair.conversation, "content": format!("soak {}", now_ms()), "clientMessageId": cmid});
                let res = http.post(format!("{api}/api/messages/send")).bearer_auth(&pair.owner).json(&body).send().await;
                if let Ok(r) = res
                    && r.status().is_success()
                    && let Ok(v) = r.json::<Value>().await
                {
                    acked.lock().expect("acked").entry(i).or_default().insert(v["message"]["seq"].as_i64().unwrap_or(0));
                    sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
        k += 1;
        window_sent += 1;
        if window_start.elapsed() >= plan.window {
            let h = std::mem::replace(
                &mut *shared.latency.lock().expect("latency"),
                Histogram::new_with_bounds(1, 120_000, 3)?,
            );
            let s = procstat::sample(&plan.pids);
            windows.push(json!({
                "minute": windows.len() + 1,
                "sent": window_sent,
                "p50_ms": h.value_at_quantile(0.5),
                "p99_ms": h.value_at_quantile(0.99),
                "rss_kib": s.rss_kib,
            }));
            eprintln!("soak window {}: {}", windows.len(), windows.last().map(Value::to_string).unwrap_or_default());
            window_start = Instant::now();
            window_sent = 0;
        }
        senders.retain(|t| !t.is_finished());
    }
    for t in senders {
        let _ = t.await;
    }
    // Everyone catches up to what was acknowledged (rejoining recovers it), then stops.
    let deadline = Instant::now() + Duration::from_secs(60);
    let behind = || {
        let acked = acked.lock().expect("acked");
        (0..n).any(|i| {
            let want = acked.get(&i).and_then(|s| s.last().copied()).unwrap_or(0);
            seen[i].lock().map(|s| s.seqs.last().copied().unwrap_or(0) < want).unwrap_or(true)
        })
    };
    while Instant::now() < deadline && behind() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(5), c).await;
    }
    let acked = acked.lock().expect("acked");
    let mut lost = 0usize;
    let mut duplicated = 0u64;
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().expect("seen");
        duplicated += s.duplicates;
        if let Some(want) = acked.get(&i) {
            lost += want.difference(&s.seqs).count();
        }
    }
    let first = windows.first().cloned().unwrap_or_default();
    let last = windows.last().cloned().unwrap_or_default();
    let rss = |w: &Value| w["rss_kib"].as_f64().unwrap_or(0.0);
    let growth = if rss(&first) > 0.0 { (rss(&last) - rss(&first)) / rss(&first) * 100.0 } else { 0.0 };
    Ok(json!({
        "duration_s": plan.duration.as_secs(),
        "conversations": n,
        "sent": sent.load(Ordering::Relaxed),
        "lost": lost,
        "duplicated": duplicated,
        "reconnects": shared.reconnects.load(Ordering::Relaxed),
        "rss_first_window_kib": rss(&first),
        "rss_last_window_kib": rss(&last),
        "rss_growth_pct": (growth * 10.0).round() / 10.0,
        "p99_first_window_ms": first["p99_ms"],
        "p99_last_window_ms": last["p99_ms"],
        "windows": windows,
    }))
}
