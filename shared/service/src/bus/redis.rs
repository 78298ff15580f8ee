//! Redis pub/sub bus (`fred`), one channel per topic (see the parent module
//! for channel names and the envelope).
//!
//! - Two connections: one publishes (and runs presence commands), one is a
//!   dedicated subscriber. The subscriber keeps no list of its channels
//!   (fred's `SubscriberClient` does, ≈ 0.15 KiB per channel, i.e. per
//!   socket, beside the gateway's own reference counts): after a reconnect
//!   the bus announces [`Resync::Reconnected`] and the gateway subscribes
//!   its topics again through [`Bus::resubscribe`].
//! - `sharded = true` uses `SPUBLISH`/`SSUBSCRIBE` (Redis Cluster sharded
//!   pub/sub: a message travels only within its slot's shard; the channel's
//!   hash tag picks the slot). Use a `redis-cluster://` URL for a cluster.
//! - Each received message is decoded once into an `Arc<Envelope>` and handed,
//!   in the task that reads the subscriber connection, to the consumer
//!   attached with [`Bus::deliver_to`] (the gateway's hub), or else to a
//!   broadcast channel ([`Bus::deliveries`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike as _, EventInterface as _, PubsubInterface as _};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::{Builder, RespVersion};
use tokio::sync::broadcast;

use super::{Bus, BusError, Envelope, Published, Resync, Sink, Topic};

/// The Redis bus. Cheap to clone (handles).
#[derive(Clone)]
pub struct RedisBus {
    publisher: Client,
    subscriber: Client,
    sharded: bool,
    /// For [`Bus::deliveries`]; made on its first call (a gateway attaches
    /// a sink instead, and would pay for an unused channel).
    tx: Arc<std::sync::OnceLock<broadcast::Sender<Published>>>,
    resync: broadcast::Sender<Resync>,
    sink: Arc<std::sync::OnceLock<Sink>>,
}

fn redis_error(what: &'static str, e: fred::error::Error) -> BusError {
    metrics::counter!("bus_redis_errors_total").increment(1);
    BusError(anyhow::Error::new(e).context(what))
}

/// Parses a URL into a fred config; `redis-cluster://host:port` (with
/// `?node=host:port` for more seeds) means a cluster.
pub fn redis_config(url: &str) -> anyhow::Result<Config> {
    let mut config = Config::from_url(url).context("parsing REDIS_URL")?;
    config.version = RespVersion::RESP3;
    Ok(config)
}

/// A builder with our timeouts and reconnect policy.
pub fn redis_builder(url: &str) -> anyhow::Result<Builder> {
    let mut builder = Builder::from_config(redis_config(url)?);
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
            c.internal_command_timeout = Duration::from_secs(5);
        })
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5));
    Ok(builder)
}

/// Messages the subscriber connection may hold for the reader task
/// ([`Resync::Lagged`] beyond that). fred sizes all eight of a client's
/// notification channels by it, allocated at start: at 65 536 that was
/// ≈ 44 MB per client, most of an idle pod's memory. 16 384 holds a burst
/// of ≈ 160 ms at 100 000 messages/s; the publisher keeps fred's default
/// (32), nothing listens to its notifications.
const SUBSCRIBER_BACKLOG: usize = 16_384;

impl RedisBus {
    /// Starts connecting (in the background, retrying forever) and returns at once;
    /// `ping` tells whether Redis is reachable.
    pub fn connect(url: &str, sharded: bool) -> anyhow::Result<Self> {
        let mut builder = redis_builder(url)?;
        let publisher = builder.build().context("building the Redis client")?;
        builder.with_performance_config(|p| p.broadcast_channel_capacity = SUBSCRIBER_BACKLOG);
        let subscriber = builder.build().context("building the Redis subscriber")?;
        publisher.connect();
        subscriber.connect();
        let (resync, _) = broadcast::channel(16);
        let bus = Self { publisher, subscriber, sharded, tx: Arc::default(), resync, sink: Arc::default() };
        bus.spawn_reconnect_watch();
        bus.spawn_reader();
        Ok(bus)
    }

    /// The publishing connection (shared with presence).
    pub fn client(&self) -> &Client {
        &self.publisher
    }

    /// After every reconnection of the subscriber: announce it, so the
    /// gateway subscribes its topics again and resyncs.
    fn spawn_reconnect_watch(&self) {
        let resync = self.resync.clone();
        let mut reconnects = self.subscriber.reconnect_rx();
        tokio::spawn(async move {
            loop {
                match reconnects.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                let _ = resync.send(Resync::Reconnected);
            }
        });
    }

    fn spawn_reader(&self) {
        let mut rx = self.subscriber.message_rx();
        let tx = Arc::clone(&self.tx);
        let resync = self.resync.clone();
        let sink = Arc::clone(&self.sink);
        tokio::spawn(async move {
            loop {
                let msg = match rx.recv().await {
                    Ok(m) => m,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        metrics::counter!("bus_messages_lagged_total").increment(n);
                        tracing::warn!(missed = n, "redis reader lagged; resyncing from the store");
                        let _ = resync.send(Resync::Lagged);
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(topic) = Topic::from_channel(&msg.channel) else { continue };
                let Some(bytes) = msg.value.as_bytes() else { continue };
                match serde_json::from_slice::<Envelope>(bytes) {
                    Ok(env) if env.v == super::ENVELOPE_VERSION => {
                        let event = Published { topic, envelope: Arc::new(env) };
                        match sink.get() {
                            Some(deliver) => deliver(&event),
                            None => {
                                if let Some(tx) = tx.get() {
                                    let _ = tx.send(event);
                                }
                            }
                        }
                    }
                    Ok(env) => tracing::debug!(v = env.v, "ignoring an envelope of another version"),
                    Err(e) => {
                        metrics::counter!("bus_bad_envelopes_total").increment(1);
                        tracing::warn!(error = %e, channel = %msg.channel, "undecodable envelope");
                    }
                }
            }
        });
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn kind(&self) -> &'static str {
        if self.sharded { "redis-sharded" } else { "redis" }
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.publisher.ping::<()>(None).await.map_err(|e| redis_error("pinging Redis", e))
    }

    async fn publish(&self, topic: &Topic, envelope: &Envelope) -> Result<(), BusError> {
        let payload = serde_json::to_vec(envelope).map_err(|e| BusError(e.into()))?;
        let channel = topic.channel();
        let r = if self.sharded {
            self.publisher.spublish::<(), _, _>(channel, payload).await
        } else {
            self.publisher.publish::<(), _, _>(channel, payload).await
        };
        r.map_err(|e| redis_error("publishing", e))
    }

    async fn subscribe(&self, topic: &Topic) -> Result<(), BusError> {
        let channel = topic.channel();
        let r = if self.sharded {
            self.subscriber.ssubscribe(channel).await
        } else {
            self.subscriber.subscribe(channel).await
        };
        r.map_err(|e| redis_error("subscribing", e))
    }

    async fn unsubscribe(&self, topic: &Topic) -> Result<(), BusError> {
        let channel = topic.channel();
        let r = if self.sharded {
            self.subscriber.sunsubscribe(channel).await
        } else {
            self.subscriber.unsubscribe(channel).await
        };
        r.map_err(|e| redis_error("unsubscribing", e))
    }

    fn deliveries(&self) -> broadcast::Receiver<Published> {
        self.tx.get_or_init(|| broadcast::channel(65_536).0).subscribe()
    }

    fn deliver_to(&self, sink: Sink) -> bool {
        self.sink.set(sink).is_ok()
    }

    fn resyncs(&self) -> Option<broadcast::Receiver<Resync>> {
        Some(self.resync.subscribe())
    }

    async fn resubscribe(&self, topics: &[Topic]) -> Result<(), BusError> {
        let channels: Vec<String> = topics.iter().map(Topic::channel).collect();
        if self.sharded {
            // One SSUBSCRIBE names channels of one slot only: one per channel,
            // all in flight at once (fred pipelines them).
            let subscribing = channels.into_iter().map(|c| self.subscriber.ssubscribe(c));
            for r in futures_util::future::join_all(subscribing).await {
                r.map_err(|e| redis_error("resubscribing", e))?;
            }
        } else {
            for chunk in channels.chunks(1000) {
                self.subscriber.subscribe(chunk.to_vec()).await.map_err(|e| redis_error("resubscribing", e))?;
            }
        }
        metrics::counter!("bus_resubscribes_total").increment(1);
        Ok(())
    }
}
