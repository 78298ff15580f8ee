//! `notify`: what notifications cost the stored REST send path, and how a
//! burst to offline recipients drains.
//!
//! Every customer is offline (no socket). Phase `without`: owners send at a
//! fixed rate over REST and nobody is subscribed. Then every customer
//! subscribes one browser, whose push service is a sink in this process
//! (HTTP, answering 201), and phase `with` sends at the same rate: every
//! message now makes a push. Phase `burst`: `burst` messages as fast as
//! `concurrency` senders go, then the outbox (events not fanned out) and
//! the pending push deliveries are watched in MongoDB until both are empty.
//! The API pod needs `OMNIBIZ_VAPID_*` and `OMNIBIZ_WEBHOOK_ALLOW_PRIVATE`
//! (the sink is on loopback).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procstat;
use crate::tokens::Pair;

/// The P-256 base point, uncompressed: a valid public key for a browser
/// nobody decrypts for (the sink only counts).
const P256_G: &str = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

pub struct Plan {
    pub api: String,
    pub pairs: Vec<Pair>,
    pub rate: f64,
    pub duration: Duration,
    pub burst: usize,
    pub concurrency: usize,
    pub mongodb: String,
    pub database: String,
    /// API (and database) processes whose CPU is measured.
    pub pids: Vec<u32>,
}

#[derive(Default)]
struct Sink {
    pushes: AtomicU64,
}

async fn start_sink() -> anyhow::Result<(Arc<Sink>, String)> {
    let sink = Arc::new(Sink::default());
    let counted = Arc::clone(&sink);
    let app = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move || {
            let s = Arc::clone(&counted);
            async move {
                s.pushes.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((sink, base))
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// One REST send; `Ok(None)` when the server said 503 (overloaded: nothing stored).
async fn send(http: &reqwest::Client, api: &str, p: &Pair, text: &str) -> anyhow::Result<Option<Duration>> {
    let t = Instant::now();
    let r = http
        .post(format!("{api}/api/messages/send"))
        .bearer_auth(&p.owner)
        .json(&json!({"conversationId": p.conversation, "content": text}))
        .send()
        .await?;
    match r.status().as_u16() {
        201 => Ok(Some(t.elapsed())),
        503 => Ok(None),
        s => anyhow::bail!("send answered {s}: {}", r.text().await.unwrap_or_default()),
    }
}

/// Sends at `rate` for `duration`, round robin over the pairs; latency and CPU.
async fn at_rate(http: &reqwest::Client, plan: &Plan, label: &str) -> anyhow::Result<Value> {
    let before = procstat::sample(&plan.pids);
    let start = Instant::now();
    let total = (plan.rate * plan.duration.as_secs_f64()) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, api, pair) = (http.clone(), plan.api.clone(), plan.pairs[i % plan.pairs.len()].clone());
        let text = format!("{label} {i}");
        tasks.spawn(async move { send(&http, &api, &pair, &text).await });
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut stored, mut refused, mut errors) = (0u64, 0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(Some(d)) => {
                stored += 1;
                hist.record(d.as_micros().max(1) as u64)?;
            }
            Ok(None) => refused += 1,
            Err(_) => errors += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = procstat::sample(&plan.pids);
    let cpu = after.cpu_secs - before.cpu_secs;
    Ok(json!({
        "offered_per_sec": plan.rate,
        "stored_per_sec": stored as f64 / secs,
        "refused": refused,
        "errors": errors,
        "latency_ms": {"p50": hist.value_at_quantile(0.5) as f64 / 1000.0, "p99": hist.value_at_quantile(0.99) as f64 / 1000.0},
        "server_cpu_ms_per_send": if stored > 0 { cpu * 1000.0 / stored as f64 } else { f64::NAN },
    }))
}

/// Events not fanned out yet, and push deliveries not sent yet.
async fn depth(db: &mongodb::Database) -> anyhow::Result<(u64, u64)> {
    use mongodb::bson::doc;
    let events =
        db.collection::<mongodb::bson::Document>("messages").count_documents(doc! {"hook": {"$exists": true}}).await?;
    let pushes = db
        .collection::<mongodb::bson::Document>("webhook_deliveries")
        .count_documents(doc! {"channel": "push", "status": "pending"})
        .await?;
    Ok((events, pushes))
}

pub async fn run(plan: &Plan) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let db = mongodb::Client::with_uri_str(&plan.mongodb).await?.database(&plan.database);
    let (sink, sink_base) = start_sink().await?;
    eprintln!(
        "notify: {} conversations, offline customers, {} sends/s for {:?}",
        plan.pairs.len(),
        plan.rate,
        plan.duration
    );
    let without = at_rate(&http, plan, "without").await?;
    eprintln!("notify: without subscriptions {without}");
    // Every customer subscribes one browser (its push service: the sink).
    for (i, p) in plan.pairs.iter().enumerate() {
        let sub = json!({
            "endpoint": format!("{sink_base}/push/{i}"),
            "keys": {"p256dh": P256_G, "auth": b64url(&(i as u128).to_be_bytes())},
        });
        let r = http
            .post(format!("{}/api/notifications/subscriptions", plan.api))
            .bearer_auth(&p.customer)
            .json(&sub)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "subscribing: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    // Read everything so far, so the next phase starts from nothing unread.
    for p in &plan.pairs {
        let _ = http
            .post(format!("{}/api/messages/conversations/{}/read", plan.api, p.conversation))
            .bearer_auth(&p.customer)
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pushes_before = sink.pushes.load(Ordering::Relaxed);
    let with = at_rate(&http, plan, "with").await?;
    eprintln!("notify: with subscriptions {with}");
    // Let the phase's pushes go out (due 2 s after their message).
    let settle = Instant::now();
    while depth(&db).await? != (0, 0) && settle.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pushes_with = sink.pushes.load(Ordering::Relaxed) - pushes_before;

    // The burst.
    let base = sink.pushes.load(Ordering::Relaxed);
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency {
        let (http, api, pairs, next, refused) =
            (http.clone(), plan.api.clone(), plan.pairs.clone(), Arc::clone(&next), Arc::clone(&refused));
        let burst = plan.burst as u64;
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= burst {
                    return Ok::<(), anyhow::Error>(());
                }
                let pair = &pairs[i as usize % pairs.len()];
                // Overloaded: told so, nothing stored; try the same message again shortly.
                while send(&http, &api, pair, &format!("burst {i}")).await?.is_none() {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    let (mut max_events, mut max_pushes) = (0u64, 0u64);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while !senders.is_empty() {
        tokio::select! {
            done = senders.join_next() => { if let Some(r) = done { r?.context("a burst sender")?; } }
            _ = ticker.tick() => {
                let (e, p) = depth(&db).await?;
                (max_events, max_pushes) = (max_events.max(e), max_pushes.max(p));
            }
        }
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let drain = Instant::now();
    loop {
        let (e, p) = depth(&db).await?;
        (max_events, max_pushes) = (max_events.max(e), max_pushes.max(p));
        if (e, p) == (0, 0) || drain.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained_after = drain.elapsed().as_secs_f64();
    let (events_left, pushes_left) = depth(&db).await?;
    let pushes = sink.pushes.load(Ordering::Relaxed) - base;
    Ok(json!({
        "without": without,
        "with": with,
        "pushes_in_with_phase": pushes_with,
        "burst": {
            "messages": plan.burst,
            "conversations": plan.pairs.len(),
            "concurrency": plan.concurrency,
            "sent_per_sec": plan.burst as f64 / sent_secs,
            "refused_and_retried": refused.load(Ordering::Relaxed),
            "pushes": pushes,
            "pushes_per_conversation": pushes as f64 / plan.pairs.len() as f64,
            "max_outbox_events": max_events,
            "max_pending_pushes": max_pushes,
            "drained_secs_after_last_send": drained_after,
            "left": {"events": events_left, "pushes": pushes_left},
        },
    }))
}
