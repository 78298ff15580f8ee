//! The hub's background tasks.

use super::*;

/// Runs `work` every `every` (the first time at once), until the hub is dropped.
pub(super) fn spawn_every<F, Fut>(hub: std::sync::Weak<Hub>, every: Duration, work: F) -> JoinHandle<()>
where
    F: Fn(Arc<Hub>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else { return };
            work(hub).await;
        }
    })
}

/// Keeps presence alive, until the hub is dropped.
pub fn spawn_heartbeat(hub: std::sync::Weak<Hub>, every: Duration) -> JoinHandle<()> {
    spawn_every(hub, every, |hub| async move {
        let rooms = hub.personal_rooms();
        hub.presence.refresh(&rooms).await;
    })
}

/// Resyncs from the store each time the bus says events may have been
/// missed (subscribing every local topic again first when the bus
/// reconnected), until the hub is dropped.
pub fn spawn_resync(hub: std::sync::Weak<Hub>, mut rx: tokio::sync::broadcast::Receiver<Resync>) -> JoinHandle<()> {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    tokio::spawn(async move {
        loop {
            let mut reconnected = match rx.recv().await {
                Ok(r) => r == Resync::Reconnected,
                // Signals were lost: one of them may have been a reconnect.
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            };
            // One pass covers a burst of signals.
            loop {
                match rx.try_recv() {
                    Ok(r) => reconnected |= r == Resync::Reconnected,
                    Err(TryRecvError::Lagged(_)) => reconnected = true,
                    Err(_) => break,
                }
            }
            let Some(h) = hub.upgrade() else { return };
            if reconnected {
                h.resubscribe().await;
            }
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
