//! `fanout` and `rest-send`: P conversations with an owner and a customer
//! connected (optionally on different gateways); messages are sent open-loop
//! at a target total rate R, each stamped with its send time in its
//! `clientMessageId`; the other side's `message_received` gives the
//! end-to-end latency (HDR histogram), losses and duplicates. After the
//! sending, in-flight messages are waited for until all arrived or none
//! came for 3 s; `lost` is what never came, and `delivered_per_sec` runs to
//! the last delivery when a backlog outlasted the sending.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Incoming};
use crate::procstat;
use crate::tokens::Pair;

/// How messages are sent.
#[derive(Debug, Clone)]
pub enum Sender {
    /// `send_message` on the customer's socket.
    Socket,
    /// `POST /api/messages/send` with the owner's token, to this API base URL.
    Rest(String),
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub receivers_url: String,
    pub senders_url: String,
    pub pairs: usize,
    pub rate: f64,
    pub duration: Duration,
    pub pids: Vec<u32>,
    /// The database server's PIDs (stored scenarios): its CPU per message.
    pub db_pids: Vec<u32>,
    /// The database's URI: its command counters per message (see [`crate::dbcommands`]).
    pub db_uri: Option<String>,
    pub sender: Sender,
    /// `0`: `pairs` conversations, one receiver each. `N`: one conversation
    /// (the first pair's) with `N` receivers (its owner's sockets, all joined)
    /// and one sender (its customer): each message is delivered `N` times.
    pub room: usize,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// `<pair>:<n>:<sent at, µs since epoch>`
fn stamp(pair: usize, n: u64) -> String {
    format!("{pair}:{n}:{}", now_us())
}

fn parse_stamp(s: &str) -> Option<(u64, u64)> {
    let mut it = s.split(':');
    let _pair = it.next()?;
    let n: u64 = it.next()?.parse().ok()?;
    let t: u64 = it.next()?.parse().ok()?;
    Some((n, t))
}

struct ReceiverResult {
    hist: Histogram<u64>,
    unique: u64,
    duplicates: u64,
    errors: u64,
}

async fn connect_joined(url: &str, token: &str, conv: &str) -> anyhow::Result<client::Ws> {
    let mut ws = client::connect(url, token, None).await?;
    ws.send(client::event("join_conversation", &json!({ "conversationId": conv }), Some(0))).await?;
    client::wait_ack(&mut ws).await?;
    Ok(ws)
}

/// Every receiver's distinct messages so far, and when the last one came
/// (µs since the epoch): how the run knows when in-flight messages stopped landing.
#[derive(Default)]
struct Arrivals {
    count: AtomicU64,
    last_us: AtomicU64,
}

/// After sending stops, in-flight messages are waited for until all have
/// arrived or none arrived for this long; what is missing then is lost.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
/// … and never longer than this (a backlog of minutes is reported as lost).
const DRAIN_MAX: Duration = Duration::from_secs(60);

/// Waiting for a count to reach its target once sending stopped.
struct Drain {
    started: Instant,
    last: u64,
    moved: Instant,
}

impl Drain {
    fn new(count: u64) -> Self {
        Self { started: Instant::now(), last: count, moved: Instant::now() }
    }

    /// Whether to stop waiting: `count` reached `target`, stood still for
    /// [`DRAIN_IDLE`], or [`DRAIN_MAX`] has passed.
    fn over(&mut self, count: u64, target: u64) -> bool {
        if count != self.last {
            (self.last, self.moved) = (count, Instant::now());
        }
        count >= target || self.moved.elapsed() >= DRAIN_IDLE || self.started.elapsed() >= DRAIN_MAX
    }
}

/// Reads one receiver until `stop` turns true, recording latencies of
/// `message_received`. (A watch, not a `Notify`: a receiver busy with a
/// message when the stop is announced must still see it afterwards — with a
/// server still draining a backlog, a missed notification left receivers
/// waiting forever.)
async fn receive(
    mut ws: client::Ws,
    mut stop: tokio::sync::watch::Receiver<bool>,
    arrivals: Arc<Arrivals>,
) -> ReceiverResult {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut seen = HashSet::new();
    let (mut duplicates, mut errors) = (0, 0);
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(Ok(m)) = msg else { break };
        match client::classify(&m) {
            Incoming::Ping => {
                let _ = ws.send(Message::text("3")).await;
            }
            Incoming::Event(body) => {
                if body.starts_with("[\"message_received\"") {
                    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                    if let Some((n, t)) = v[1]["clientMessageId"].as_str().and_then(parse_stamp) {
                        if seen.insert(n) {
                            let now = now_us();
                            let _ = hist.record(now.saturating_sub(t).max(1));
                            arrivals.count.fetch_add(1, Ordering::Relaxed);
                            arrivals.last_us.fetch_max(now, Ordering::Relaxed);
                        } else {
                            duplicates += 1;
                        }
                    }
                } else if body.starts_with("[\"message_error\"") {
                    errors += 1;
                }
            }
            Incoming::Closed => break,
            _ => {}
        }
    }
    ReceiverResult { hist, unique: seen.len() as u64, duplicates, errors }
}

/// A socket sender: writes what the scheduler hands it, drains what it
/// receives. Once told to stop, it waits for the server to confirm
/// (`message_sent`) what it wrote before closing, as a client that cares
/// about its messages would: closing with a backlog unread would have the
/// kernel reset the connection and drop the unread messages with it.
async fn socket_sender(
    ws: client::Ws,
    pair: usize,
    conv: String,
    mut rx: mpsc::Receiver<u64>,
    errors: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) {
    let (mut sink, mut stream) = ws.split();
    let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<()>();
    let errs = Arc::clone(&errors);
    let confirmed = Arc::new(AtomicU64::new(0));
    let confirms = Arc::clone(&confirmed);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            match client::classify(&m) {
                Incoming::Ping => {
                    let _ = pong_tx.send(());
                }
                Incoming::Event(b) if b.starts_with("[\"message_sent\"") => {
                    confirms.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Event(b) if b.starts_with("[\"message_error\"") => {
                    // Refused at the door (the server is saturated): told, nothing stored.
                    if b.contains("\"OVERLOADED\"") {
                        refused.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errs.fetch_add(1, Ordering::Relaxed);
                    }
                    confirms.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Closed => break,
                _ => {}
            }
        }
    });
    let mut written = 0_u64;
    loop {
        tokio::select! {
            n = rx.recv() => {
                let Some(n) = n else { break };
                let data = json!({"conversationId": conv, "message": format!("load {n}"), "clientMessageId": stamp(pair, n)});
                if sink.send(client::event("send_message", &data, None)).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                written += 1;
            }
            Some(()) = pong_rx.recv() => {
                let _ = sink.send(Message::text("3")).await;
            }
        }
    }
    // Wait for the confirmations (answering pings meanwhile), then close.
    let mut drain = Drain::new(confirmed.load(Ordering::Relaxed));
    while !drain.over(confirmed.load(Ordering::Relaxed), written) {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            Some(()) = pong_rx.recv() => {
                let _ = sink.send(Message::text("3")).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = sink.close().await;
    reader.abort();
}

pub async fn run(pairs: &[Pair], plan: &Plan) -> anyhow::Result<Value> {
    let p = if plan.room > 0 { 1 } else { plan.pairs.min(pairs.len()) };
    anyhow::ensure!(p > 0, "no pairs to use");
    anyhow::ensure!(plan.room == 0 || matches!(plan.sender, Sender::Socket), "a room is sent to over a socket");
    // Each message reaches this many receivers.
    let per_message = plan.room.max(1) as u64;
    let bar = indicatif::ProgressBar::new(p as u64 + per_message * p as u64).with_message("connecting");
    // Receivers: the owners, on the receivers' gateway (in a room, its owner's sockets).
    let mut receivers = Vec::with_capacity(p);
    for pair in &pairs[..p] {
        for _ in 0..per_message {
            receivers.push(connect_joined(&plan.receivers_url, &pair.owner, &pair.conversation).await?);
            bar.inc(1);
        }
    }
    let errors = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut senders: Vec<mpsc::Sender<u64>> = Vec::new();
    let http = reqwest::Client::new();
    if let Sender::Socket = plan.sender {
        for (i, pair) in pairs[..p].iter().enumerate() {
            let ws = connect_joined(&plan.senders_url, &pair.customer, &pair.conversation).await?;
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(socket_sender(
                ws,
                i,
                pair.conversation.clone(),
                rx,
                Arc::clone(&errors),
                Arc::clone(&refused),
            ));
            senders.push(tx);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    // Receivers get `message_received` for messages the *customer* sends (socket mode);
    // in REST mode the owner sends, so the customers receive: swap roles.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let arrivals = Arc::new(Arrivals::default());
    let mut recv_tasks = Vec::new();
    if let Sender::Rest(_) = plan.sender {
        for ws in receivers.drain(..) {
            drop(ws);
        }
        for pair in &pairs[..p] {
            let ws = connect_joined(&plan.receivers_url, &pair.customer, &pair.conversation).await?;
            recv_tasks.push(tokio::spawn(receive(ws, stopped.clone(), Arc::clone(&arrivals))));
        }
    } else {
        for ws in receivers {
            recv_tasks.push(tokio::spawn(receive(ws, stopped.clone(), Arc::clone(&arrivals))));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let db = match &plan.db_uri {
        Some(uri) => Some(mongodb::Client::with_uri_str(uri).await?),
        None => None,
    };
    let commands_before = crate::dbcommands::read_if(db.as_ref()).await;
    let before = procstat::sample(&plan.pids);
    let db_before = procstat::sample(&plan.db_pids);
    let progress = indicatif::ProgressBar::new(plan.duration.as_secs().max(1));
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} sending {msg} [{bar:30}] {pos}/{len}s")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let start_us = now_us();
    let mut sent: u64 = 0;
    let mut behind: u64 = 0;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while start.elapsed() < plan.duration {
        tick.tick().await;
        let due = (plan.rate * start.elapsed().as_secs_f64()) as u64;
        while sent < due {
            let i = (sent as usize) % p;
            match &plan.sender {
                Sender::Socket => {
                    if senders[i].try_send(sent).is_err() {
                        behind += 1;
                    }
                }
                Sender::Rest(api) => {
                    let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                        behind += 1;
                        sent += 1;
                        continue;
                    };
                    let (http, url, pair, errs, refusals) = (
                        http.clone(),
                        format!("{api}/api/messages/send"),
                        pairs[i].clone(),
                        Arc::clone(&errors),
                        Arc::clone(&refused),
                    );
                    let n = sent;
                    tokio::spawn(async move {
                        let body = json!({"conversationId": pair.conversation, "content": format!("load {n}"), "clientMessageId": stamp(i, n)});
                        match http.post(url).bearer_auth(&pair.owner).json(&body).send().await {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                                let overloaded = r.text().await.is_ok_and(|t| t.contains("\"OVERLOADED\""));
                                let counter = if overloaded { &refusals } else { &errs };
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                errs.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        drop(permit);
                    });
                }
            }
            sent += 1;
        }
        progress.set_position(start.elapsed().as_secs());
        progress.set_message(format!("{sent} msgs"));
    }
    let send_secs = start.elapsed().as_secs_f64();
    drop(senders);
    // Let in-flight messages land: a server behind its offered rate still
    // holds a backlog, which is late, not lost (and its work counts in the CPU).
    let mut drain = Drain::new(arrivals.count.load(Ordering::Relaxed));
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let expected = (sent - behind).saturating_sub(errors.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed));
        if drain.over(arrivals.count.load(Ordering::Relaxed), expected * per_message) {
            break;
        }
    }
    let after = procstat::sample(&plan.pids);
    let db_after = procstat::sample(&plan.db_pids);
    let commands_after = match commands_before {
        Some(_) => crate::dbcommands::read_if(db.as_ref()).await,
        None => None,
    };
    let _ = stop.send(true);
    progress.finish_and_clear();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut unique, mut duplicates, mut recv_errors) = (0, 0, 0);
    for t in recv_tasks {
        let r = t.await?;
        hist.add(&r.hist)?;
        unique += r.unique;
        duplicates += r.duplicates;
        recv_errors += r.errors;
    }
    let attempted = sent - behind;
    let cpu = after.cpu_secs - before.cpu_secs;
    // Over the time to the last delivery when a backlog outlasted the sending.
    let last_delivery_secs = arrivals.last_us.load(Ordering::Relaxed).saturating_sub(start_us) as f64 / 1e6;
    let delivery_secs = send_secs.max(last_delivery_secs);
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let curve: Vec<Value> =
        [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0].iter().map(|q| json!([q, ms(*q)])).collect();
    let refused = refused.load(Ordering::Relaxed);
    let mut out = json!({
        "pairs": p,
        "receivers": per_message * p as u64,
        "target_rate": plan.rate,
        "sent": attempted,
        "client_behind": behind,
        "delivered": unique,
        "delivered_per_sec": unique as f64 / delivery_secs,
        "last_delivery_secs": last_delivery_secs,
        // Refused sends were told so and never stored: not lost.
        "refused": refused,
        "lost": (attempted * per_message).saturating_sub(unique + refused * per_message),
        "duplicates": duplicates,
        "errors": errors.load(Ordering::Relaxed) + recv_errors,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0},
        "latency_curve_ms": curve,
        "server_cpu_secs": cpu,
        "delivered_per_cpu_sec": if cpu > 0.0 { unique as f64 / cpu } else { 0.0 },
    });
    if !plan.db_pids.is_empty() {
        let db_cpu = db_after.cpu_secs - db_before.cpu_secs;
        out["database_cpu_secs"] = json!(db_cpu);
        out["database_cpu_us_per_message"] = json!(db_cpu * 1e6 / unique.max(1) as f64);
    }
    if let (Some(b), Some(a)) = (&commands_before, &commands_after) {
        // Per stored message: each one is delivered `per_message` times.
        out["database_commands_per_message"] = json!(crate::dbcommands::per_message(b, a, unique / per_message));
    }
    Ok(out)
}
