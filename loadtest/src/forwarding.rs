//! What a polling request costs when it lands on a gateway that does not
//! hold its session (no load-balancer affinity): the same requests, sent
//! one after another, first to the gateway that holds the session, then to
//! another gateway, which forwards them. Reports latency percentiles and
//! server CPU per request (both gateways together) for each path.

use std::time::Instant;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procstat;

/// Who to measure.
pub struct Plan {
    /// The gateway that opens (and so holds) the session.
    pub owner: String,
    /// Another gateway of the same cluster.
    pub other: String,
    pub token: String,
    pub requests: usize,
    pub pids: Vec<u32>,
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| procstat::cpu_secs(p)).sum()
}

/// Opens a polling session on `owner` with a Socket.IO CONNECT; returns its sid.
async fn open(http: &reqwest::Client, owner: &str, token: &str) -> anyhow::Result<String> {
    let body = http.get(format!("{owner}/socket.io/?EIO=4&transport=polling")).send().await?.text().await?;
    let open: Value = serde_json::from_str(body.get(1..).unwrap_or("")).context("the open packet")?;
    let sid = open["sid"].as_str().context("a sid")?.to_owned();
    let connect = format!("40{}", json!({ "token": token }));
    let r = http.post(format!("{owner}/socket.io/?EIO=4&transport=polling&sid={sid}")).body(connect).send().await?;
    anyhow::ensure!(r.status().is_success(), "CONNECT refused: {}", r.status());
    Ok(sid)
}

/// `requests` noop POSTs for `sid` sent to `base`: latency histogram (µs) and CPU seconds.
async fn measure(
    http: &reqwest::Client,
    base: &str,
    sid: &str,
    requests: usize,
    pids: &[u32],
) -> anyhow::Result<(Histogram<u64>, f64)> {
    let url = format!("{base}/socket.io/?EIO=4&transport=polling&sid={sid}");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let cpu0 = cpu(pids);
    for _ in 0..requests {
        let t = Instant::now();
        let r = http.post(&url).body("6").send().await?;
        anyhow::ensure!(r.status().is_success(), "POST answered {}", r.status());
        r.bytes().await?;
        hist.record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1))?;
    }
    Ok((hist, cpu(pids) - cpu0))
}

fn summary(h: &Histogram<u64>, cpu_s: f64, n: usize) -> Value {
    json!({
        "p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0,
        "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
        "cpu_us_per_request": cpu_s * 1e6 / n.max(1) as f64,
    })
}

pub async fn run(plan: &Plan) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let n = plan.requests;
    // A session per phase, so neither outlives its heartbeat.
    let sid = open(&http, &plan.owner, &plan.token).await?;
    measure(&http, &plan.owner, &sid, n / 10, &plan.pids).await?; // warm-up
    let (direct, direct_cpu) = measure(&http, &plan.owner, &sid, n, &plan.pids).await?;
    let sid = open(&http, &plan.owner, &plan.token).await?;
    measure(&http, &plan.other, &sid, n / 10, &plan.pids).await?;
    let (forwarded, forwarded_cpu) = measure(&http, &plan.other, &sid, n, &plan.pids).await?;
    let d = summary(&direct, direct_cpu, n);
    let f = summary(&forwarded, forwarded_cpu, n);
    let added_ms = f["p50_ms"].as_f64().unwrap_or(0.0) - d["p50_ms"].as_f64().unwrap_or(0.0);
    let added_cpu = f["cpu_us_per_request"].as_f64().unwrap_or(0.0) - d["cpu_us_per_request"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "requests": n,
        "direct": d,
        "forwarded": f,
        "added_p50_ms": added_ms,
        "added_cpu_us_per_request": added_cpu,
    }))
}
