//! Bounded latency when the stored path is saturated: refuse early and
//! clearly rather than queue without bound.
//!
//! A stored send holds one of a fixed number of slots per process while it
//! reads, writes and publishes (`OMNIBIZ_SEND_CONCURRENCY`). A send that
//! finds none free waits for one at most `OMNIBIZ_SEND_QUEUE_MS`; past that
//! it is refused with [`Overloaded`] — REST 503 `OVERLOADED` with
//! `Retry-After`, a socket ack `{ok:false, code:"OVERLOADED", retryAfterMs}`
//! — before anything is stored, so a retry with the same `clientMessageId`
//! stores it exactly once. An accepted send's latency is then at most the
//! queue wait plus the time the store takes with that many writes in flight
//! (Little's law: slots ÷ the database's rate), instead of growing with
//! everything offered above what the database can take.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refused at the door: the stored path is saturated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is at capacity for sends; retry in {}s with the same clientMessageId (it is stored once)", .retry_after.as_secs().max(1))]
pub struct Overloaded {
    pub retry_after: Duration,
}

impl Overloaded {
    /// Whole seconds to wait, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The slots of stored sends in one process.
#[derive(Debug, Clone)]
pub struct SendGate {
    slots: Option<Arc<Semaphore>>,
    wait: Duration,
}

/// A send's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SendSlot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl SendGate {
    /// `slots` sends at once; a send waits for a slot at most `wait`.
    pub fn new(slots: usize, wait: Duration) -> Self {
        metrics::counter!("sends_overloaded_total").increment(0);
        Self { slots: Some(Arc::new(Semaphore::new(slots.max(1)))), wait }
    }

    /// No bound (unit tests, tools).
    pub fn unbounded() -> Self {
        Self { slots: None, wait: Duration::ZERO }
    }

    /// A slot, or [`Overloaded`] when none frees up within the wait.
    pub async fn admit(&self) -> Result<SendSlot, Overloaded> {
        let Some(slots) = &self.slots else { return Ok(SendSlot(None)) };
        if let Ok(p) = Arc::clone(slots).try_acquire_owned() {
            return Ok(SendSlot(Some(p)));
        }
        match tokio::time::timeout(self.wait, Arc::clone(slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(SendSlot(Some(p))),
            _ => {
                metrics::counter!("sends_overloaded_total").increment(1);
                // A second is the least `Retry-After` can say; clients with
                // their own backoff (socket acks carry milliseconds) may come sooner.
                Err(Overloaded { retry_after: Duration::from_secs(1) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_refuses_after_its_wait_and_frees_slots_on_drop() {
        let gate = SendGate::new(2, Duration::from_millis(20));
        let a = gate.admit().await.expect("first");
        let _b = gate.admit().await.expect("second");
        let started = tokio::time::Instant::now();
        let refused = gate.admit().await.expect_err("full");
        assert!(started.elapsed() >= Duration::from_millis(20), "waited its turn first");
        assert_eq!(refused.retry_after_secs(), 1);
        drop(a);
        gate.admit().await.expect("a slot freed");
        // Unbounded never refuses.
        let open = SendGate::unbounded();
        let held: Vec<_> = futures_util::future::join_all((0..100).map(|_| open.admit())).await;
        assert!(held.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_send_waiting_for_a_slot_gets_it_when_one_frees_in_time() {
        let gate = SendGate::new(1, Duration::from_secs(2));
        let held = gate.admit().await.expect("first");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.admit().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }
}
