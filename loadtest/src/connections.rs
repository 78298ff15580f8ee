//! `connections`: open N authenticated clients (each joins its conversation),
//! hold them, and report connect rate, failures, how long each connect took
//! (TCP connect → handshake → CONNECT → join acknowledged, once the client
//! started it), and the servers' memory and CPU per connection. Runs as
//! several worker processes (each process may hold ~19.9k sockets here) and
//! spreads sockets over loopback source addresses.

use std::io::{BufRead as _, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::client::{self, Incoming};
use crate::procstat;
use crate::tokens::Pair;

pub struct Plan {
    pub urls: Vec<String>,
    pub count: usize,
    pub sources: Vec<IpAddr>,
    pub concurrency: usize,
}

/// Connects this process's share and holds until stdin closes. Prints
/// `READY <ok> <failed> <seconds>` once every attempt finished.
pub async fn worker(pairs: Vec<Pair>, plan: Plan) -> anyhow::Result<()> {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    // Milliseconds from starting a connect to its join acknowledged.
    let took = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(plan.count);
    for i in 0..plan.count {
        let pair = pairs[i % pairs.len()].clone();
        let url = plan.urls[i % plan.urls.len()].clone();
        let source = (!plan.sources.is_empty()).then(|| plan.sources[i % plan.sources.len()]);
        let (ok, failed, gate, took) = (Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&gate), Arc::clone(&took));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let began = Instant::now();
            let mut ws = match client::connect(&url, &pair.customer, source).await {
                Ok(ws) => ws,
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("connect failed: {e:#}");
                    }
                    let _ = done_tx.send(());
                    return;
                }
            };
            let joined = ws.send(client::event("join_conversation", &json!(pair.conversation), Some(0))).await.is_ok()
                && client::wait_ack(&mut ws).await.is_ok();
            if joined {
                let ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
                if let Ok(mut h) = took.lock() {
                    let _ = h.record(ms);
                }
                ok.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
            let _ = done_tx.send(());
            // Hold: answer pings until the server or the run ends.
            while let Some(Ok(m)) = ws.next().await {
                let stop = match client::classify(&m) {
                    Incoming::Ping => ws.send(tokio_tungstenite::tungstenite::Message::text("3")).await.is_err(),
                    Incoming::Closed => true,
                    _ => false,
                };
                if stop {
                    break;
                }
            }
        });
        tasks.push(done_rx);
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut encoded = Vec::new();
    {
        let h = took.lock().map_err(|_| anyhow::anyhow!("the connect histogram's lock was poisoned"))?;
        V2Serializer::new().serialize(&h, &mut encoded).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    println!(
        "READY {} {} {:.3} {}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        encoded.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    std::io::stdout().flush()?;
    // Hold until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    })
    .await?;
    Ok(())
}

/// The parent: starts workers, waits until all are connected, samples the servers.
pub fn run(
    exe: &std::path::Path,
    worker_args: &[String],
    total: usize,
    workers: usize,
    pids: &[u32],
    settle: Duration,
) -> anyhow::Result<serde_json::Value> {
    let before = procstat::sample(pids);
    let per = total.div_ceil(workers);
    let bar = indicatif::ProgressBar::new(workers as u64).with_message("workers connected");
    let mut children = Vec::new();
    for w in 0..workers {
        let n = per.min(total - (per * w).min(total));
        let mut child = Command::new(exe)
            .args(worker_args)
            .args(["--worker", &w.to_string(), "--count", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a worker")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        children.push((child, std::io::BufReader::new(stdout)));
    }
    let (mut ok, mut failed, mut secs) = (0usize, 0usize, 0f64);
    let mut took = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
    for (_, out) in &mut children {
        let mut line = String::new();
        out.read_line(&mut line)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        anyhow::ensure!(f.first() == Some(&"READY") && f.len() == 5, "worker said {line:?}");
        ok += f[1].parse::<usize>()?;
        failed += f[2].parse::<usize>()?;
        secs = secs.max(f[3].parse()?);
        took.add(decode_histogram(f[4]).with_context(|| format!("worker said {line:?}"))?)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::thread::sleep(settle);
    let after = procstat::sample(pids);
    for (mut child, _) in children {
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }
    let rss_delta = after.rss_kib.saturating_sub(before.rss_kib);
    Ok(json!({
        "connections": ok,
        "failed": failed,
        "connect_seconds": secs,
        "connect_rate_per_sec": ok as f64 / secs.max(1e-9),
        "server_rss_kib_before": before.rss_kib,
        "server_rss_kib_after": after.rss_kib,
        "server_rss_kib_per_connection": rss_delta as f64 / ok.max(1) as f64,
        "server_cpu_secs": after.cpu_secs - before.cpu_secs,
        "connect_ms": {
            "p50": took.value_at_quantile(0.5),
            "p99": took.value_at_quantile(0.99),
            "p999": took.value_at_quantile(0.999),
            "max": took.max(),
            "over_10s": took.count_between(10_001, u64::MAX),
        },
    }))
}

/// A worker's histogram, from the hex of its V2 serialization.
fn decode_histogram(hex: &str) -> anyhow::Result<Histogram<u64>> {
    anyhow::ensure!(hex.len().is_multiple_of(2) && hex.is_ascii(), "not hex");
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .context("not hex")?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| anyhow::anyhow!("histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_histogram_survives_the_ready_line() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("bounds");
        for ms in [3, 5, 8, 12_000, 40_000] {
            h.record(ms).expect("record");
        }
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&h, &mut bytes).expect("serialize");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let back = decode_histogram(&hex).expect("decode");
        assert_eq!(back.len(), 5);
        assert_eq!(back.count_between(10_001, u64::MAX), 2);
        assert_eq!(back.max(), h.max());
        assert!(decode_histogram("zz").is_err());
        assert!(decode_histogram("abc").is_err());
    }
}
