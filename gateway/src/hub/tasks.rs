//! The hub's background tasks.

use super::*;

/// Keeps presence alive and limiter memory bounded, until the hub is dropped.
pub fn spawn_heartbeat(hub: std::sync::Weak<Hub>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            let rooms = hub.personal_rooms();
            hub.presence.refresh(&rooms).await;
            hub.prune_limiters();
        }
    })
}

/// Resyncs from the store each time the bus says events may have been
/// missed, until the hub is dropped.
pub fn spawn_resync(hub: std::sync::Weak<Hub>, mut rx: tokio::sync::broadcast::Receiver<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            // One pass covers a burst of signals.
            while rx.try_recv().is_ok() {}
            let Some(h) = hub.upgrade() else { return };
            h.resync().await;
        }
    })
}

/// Reads the bus and dispatches, until the hub is dropped.
pub fn spawn_dispatcher(
    hub: std::sync::Weak<Hub>,
    mut rx: tokio::sync::broadcast::Receiver<Published>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(p) => match hub.upgrade() {
                    Some(h) => h.dispatch(&p),
                    None => return,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    metrics::counter!("gateway_bus_lagged_total").increment(n);
                    tracing::warn!(missed = n, "dispatcher lagged; resyncing from the store");
                    if let Some(h) = hub.upgrade() {
                        tokio::spawn(async move { h.resync().await });
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
