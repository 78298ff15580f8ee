//! Reference-counted bus subscriptions: a topic is subscribed when its first
//! local member arrives and unsubscribed when its last one leaves, so this
//! gateway receives only traffic for its own members.

use std::collections::HashMap;
use std::sync::Arc;

use omnibiz_service::bus::{Bus, BusError, Topic};

pub struct Subscriptions {
    bus: Arc<dyn Bus>,
    // A tokio Mutex held across the (un)subscribe round trip: it keeps the
    // count and Redis's state in step when joins and leaves interleave.
    counts: tokio::sync::Mutex<HashMap<Topic, usize>>,
}

impl Subscriptions {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self { bus, counts: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// One more local member; subscribes (and waits for it) on the first.
    pub async fn acquire(&self, topic: &Topic) -> Result<(), BusError> {
        let mut counts = self.counts.lock().await;
        let n = counts.entry(topic.clone()).or_insert(0);
        if *n == 0 {
            if let Err(e) = self.bus.subscribe(topic).await {
                counts.remove(topic);
                return Err(e);
            }
            *counts.get_mut(topic).expect("just inserted") += 1;
            metrics::gauge!("gateway_subscriptions").set(counts.len() as f64);
        } else {
            *n += 1;
        }
        Ok(())
    }

    /// Subscribes every topic with a local member again (after the bus
    /// reconnected without them). Holds the lock throughout, so no join or
    /// leave interleaves with it.
    pub async fn resubscribe_all(&self) -> Result<usize, BusError> {
        let counts = self.counts.lock().await;
        let topics: Vec<Topic> = counts.keys().cloned().collect();
        self.bus.resubscribe(&topics).await?;
        Ok(topics.len())
    }

    /// One member fewer; unsubscribes after the last.
    pub async fn release(&self, topic: &Topic) {
        let mut counts = self.counts.lock().await;
        let Some(n) = counts.get_mut(topic) else { return };
        *n -= 1;
        if *n == 0 {
            counts.remove(topic);
            metrics::gauge!("gateway_subscriptions").set(counts.len() as f64);
            if let Err(e) = self.bus.unsubscribe(topic).await {
                tracing::warn!(error.cause_chain = ?e, channel = %topic.channel(), "unsubscribe failed");
            }
        }
    }
}
