//! In-process bus for the single-node `serve` mode: a broadcast channel that
//! every in-process consumer (the embedded gateway) reads.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Bus, BusError, Envelope, Published, Topic};

/// The in-process bus. Events published with nobody listening are dropped,
/// like Redis pub/sub with no subscriber. There is only one process, so
/// (un)subscribing is a no-op: every consumer sees every event and keeps
/// what concerns its local members.
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

    async fn subscribe(&self, _topic: &Topic) -> Result<(), BusError> {
        Ok(())
    }

    async fn unsubscribe(&self, _topic: &Topic) -> Result<(), BusError> {
        Ok(())
    }

    fn deliveries(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::EventKind;

    #[tokio::test]
    async fn subscribers_receive_what_is_published() {
        let bus = LocalBus::new(16);
        let mut rx = bus.deliveries();
        let topic = Topic::Principal(omnibiz_domain::Party::Owner(omnibiz_domain::UserId::new()));
        let env = Envelope::new(EventKind::Presence, None, serde_json::json!({"online": true}));
        bus.publish(&topic, &env).await.expect("publish");
        let got = rx.recv().await.expect("receive");
        assert_eq!(got.topic, topic);
        assert_eq!(*got.envelope, env);
    }
}
