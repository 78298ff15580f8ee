//! Bounded latency when the stored path is saturated: refuse early and
//! clearly rather than queue without bound.
//!
//! A stored send holds one of a fixed number of slots per process while it
//! reads, writes and publishes (`OMNIBIZ_SEND_CONCURRENCY`). A send that
//! finds none free joins a waiting line of `OMNIBIZ_SEND_QUEUE_DEPTH` and
//! waits there at most `OMNIBIZ_SEND_QUEUE_MS`; a send that finds the line
//! full, or waits past that, is refused with [`Overloaded`] — REST 503
//! `OVERLOADED` with `Retry-After`, a socket ack `{ok:false,
//! code:"OVERLOADED", retryAfterMs}` — before anything is stored, so a retry
//! with the same `clientMessageId` stores it exactly once. An accepted
//! send's latency is then at most the wait plus the time the store takes
//! with that many writes in flight (Little's law: slots ÷ the database's
//! rate), instead of growing with everything offered above what the
//! database can take.
//!
//! The line has a length, not only a wait, because a socket's events are
//! handled one after another (in the order its client sent them): under a
//! sustained overload every send that waited the whole `QUEUE_MS` to be
//! refused held its socket's next events behind it, so a busy sender's
//! sends queued on its connection — outside the gate, unbounded (a 2 s p99
//! at twice the database's rate, BENCHMARKS.md "Overload"). With the line
//! full, a refusal is immediate and costs the socket nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Sends waiting for a slot now; at most `line` wait at once.
    waiting: Arc<AtomicUsize>,
    line: usize,
}

/// Counts a send in the waiting line while it waits.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A send's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SendSlot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl SendGate {
    /// `slots` sends at once; `line` more wait for a slot, each at most `wait`.
    pub fn new(slots: usize, line: usize, wait: Duration) -> Self {
        metrics::counter!("sends_overloaded_total").increment(0);
        Self { slots: Some(Arc::new(Semaphore::new(slots.max(1)))), wait, waiting: Arc::default(), line }
    }

    /// No bound (unit tests, tools).
    pub fn unbounded() -> Self {
        Self { slots: None, wait: Duration::ZERO, waiting: Arc::default(), line: 0 }
    }

    /// A slot, or [`Overloaded`] when the waiting line is full or none
    /// frees up within the wait.
    pub async fn admit(&self) -> Result<SendSlot, Overloaded> {
        let Some(slots) = &self.slots else { return Ok(SendSlot(None)) };
        if let Ok(p) = Arc::clone(slots).try_acquire_owned() {
            return Ok(SendSlot(Some(p)));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.line {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Self::refused());
        }
        let _in_line = InLine(&self.waiting);
        match tokio::time::timeout(self.wait, Arc::clone(slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(SendSlot(Some(p))),
            _ => Err(Self::refused()),
        }
    }

    fn refused() -> Overloaded {
        metrics::counter!("sends_overloaded_total").increment(1);
        // A second is the least `Retry-After` can say; clients with
        // their own backoff (socket acks carry milliseconds) may come sooner.
        Overloaded { retry_after: Duration::from_secs(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_refuses_after_its_wait_and_frees_slots_on_drop() {
        let gate = SendGate::new(2, 16, Duration::from_millis(20));
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
    async fn a_full_waiting_line_refuses_at_once() {
        let gate = SendGate::new(2, 2, Duration::from_secs(5));
        let _held = (gate.admit().await.expect("first"), gate.admit().await.expect("second"));
        // Two wait (the line's length)...
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.admit().await.map(|_| ()) })
            })
            .collect();
        while gate.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        // ...and the next is refused without waiting the 5 s.
        let started = std::time::Instant::now();
        gate.admit().await.expect_err("the line is full");
        assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not after its wait");
        // Leaving the line makes room in it again.
        for w in waiters {
            w.abort();
            let _ = w.await;
        }
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0, "an abandoned wait leaves the line");
    }

    #[tokio::test]
    async fn a_send_waiting_for_a_slot_gets_it_when_one_frees_in_time() {
        let gate = SendGate::new(1, 1, Duration::from_secs(2));
        let held = gate.admit().await.expect("first");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.admit().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }
}
