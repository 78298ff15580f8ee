//! In-process bus for the single-node `serve` mode: a broadcast channel that
//! every in-process consumer (the embedded gateway) reads.

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

use super::{Bus, BusError, Envelope, Topic};

/// One published event, as in-process consumers see it.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: Topic,
    pub envelope: Arc<Envelope>,
}

/// The in-process bus. Events published with nobody listening are dropped,
/// like Redis pub/sub with no subscriber.
#[derive(Debug, Clone)]
pub struct LocalBus {
    tx: broadcast::Sender<Published>,
}

impl LocalBus {
    /// `capacity` bounds how far a slow consumer may lag before it misses events.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(65_536)
    }
}

#[async_trait]
impl Bus for LocalBus {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, topic: &Topic, envelope: &Envelope) -> Result<(), BusError> {
        // An error only means nobody is listening, which is not a failure.
        let _ = self.tx.send(Published { topic: topic.clone(), envelope: Arc::new(envelope.clone()) });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventKind;

    #[tokio::test]
    async fn subscribers_receive_what_is_published() {
        let bus = LocalBus::new(16);
        let mut rx = bus.subscribe();
        let topic = Topic::Principal("user:x".into());
        let env = Envelope::new(EventKind::Presence, None, serde_json::json!({"online": true}));
        bus.publish(&topic, &env).await.expect("publish");
        let got = rx.recv().await.expect("receive");
        assert_eq!(got.topic, topic);
        assert_eq!(*got.envelope, env);
    }
}
