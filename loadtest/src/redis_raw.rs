//! `redis-raw`: the physical limit — raw Redis PUBLISH → subscriber
//! throughput on this machine, with the same client library the gateway uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike as _, EventInterface as _, PubsubInterface as _};
use fred::prelude::{Builder, Config};
use serde_json::{Value, json};

pub async fn run(url: &str, messages: u64, size: usize) -> anyhow::Result<Value> {
    let config = Config::from_url(url)?;
    let publisher = Builder::from_config(config.clone()).build()?;
    let subscriber = Builder::from_config(config)
        .with_performance_config(|p| p.broadcast_channel_capacity = 1 << 20)
        .build_subscriber_client()?;
    publisher.init().await?;
    subscriber.init().await?;
    let channel = "omnibiz:{bench:raw}";
    subscriber.subscribe(channel).await?;
    let got = Arc::new(AtomicU64::new(0));
    let mut rx = subscriber.message_rx();
    let counter = Arc::clone(&got);
    let done = Arc::new(tokio::sync::Notify::new());
    let done2 = Arc::clone(&done);
    tokio::spawn(async move {
        while rx.recv().await.is_ok() {
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == messages {
                done2.notify_one();
                return;
            }
        }
    });
    let payload = "x".repeat(size);
    let start = Instant::now();
    // Publish in pipelined batches, as a busy API fleet would.
    let mut sent = 0;
    while sent < messages {
        let pipe = publisher.pipeline();
        let batch = (messages - sent).min(500);
        for _ in 0..batch {
            let _: () = pipe.publish(channel, payload.as_str()).await?;
        }
        let _: Vec<i64> = pipe.all().await?;
        sent += batch;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let _ = tokio::time::timeout(Duration::from_secs(30), done.notified()).await;
    let secs = start.elapsed().as_secs_f64();
    let received = got.load(Ordering::Relaxed);
    let _ = publisher.quit().await;
    let _ = subscriber.quit().await;
    Ok(json!({
        "messages": messages,
        "payload_bytes": size,
        "received": received,
        "publish_per_sec": messages as f64 / publish_secs,
        "delivered_per_sec": received as f64 / secs,
    }))
}
