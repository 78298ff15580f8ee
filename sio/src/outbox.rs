//! A connection's outbox: what the application writes into, what the
//! transport (a websocket task or a long-poll GET) drains.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use axum::body::Bytes;

use crate::ws::{OP_BINARY, OP_TEXT, WireFrame};

/// One Engine.IO message on its way out. Cloning shares the bytes, so a
/// frame encoded once can go to any number of connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text packet, Engine.IO type digit included (`4…` for a message).
    Text(Bytes),
    /// A binary message (Socket.IO attachments): raw bytes, no type digit.
    Binary(Bytes),
}

impl Frame {
    pub fn text(s: impl Into<Bytes>) -> Self {
        Self::Text(s.into())
    }
}

impl WireFrame for Frame {
    fn opcode(&self) -> u8 {
        match self {
            Self::Text(_) => OP_TEXT,
            Self::Binary(_) => OP_BINARY,
        }
    }
    fn payload(&self) -> &[u8] {
        match self {
            Self::Text(b) | Self::Binary(b) => b,
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The client is too far behind (the outbox holds its maximum).
    Full,
    /// The connection is closing or closed.
    Closed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "outgoing buffer full",
            Self::Closed => "connection closed",
        })
    }
}

impl std::error::Error for SendError {}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client did not read fast enough: cut at once.
    SlowClient,
    /// The server is shutting down: the client should reconnect (elsewhere).
    ServerShutdown,
    /// The client sent something that is not valid Engine.IO / Socket.IO.
    ProtocolError,
    /// The client said goodbye (an Engine.IO CLOSE).
    ClientClosed,
    /// The client went quiet (no pong, or no Socket.IO CONNECT in time).
    Timeout,
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<Frame>,
    closing: Option<CloseReason>,
    /// The task that writes this connection's frames, woken on a push.
    waker: Option<Waker>,
    /// Most frames queued. Kept here, in the padding after `closing`, not
    /// beside the lock: the outbox is then 64 bytes, 80 with its `Arc`'s
    /// counts, the allocator's 80-byte class rather than its 96-byte one.
    max: u32,
}

/// One connection's outgoing queue, bounded. Shared (`Arc`) by the
/// application and the transport; a push never waits.
pub struct Outbox {
    // std Mutex: held for a push or a drain, never across an await.
    inner: Mutex<Inner>,
}

impl Outbox {
    pub(crate) fn new(max: usize) -> Self {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        Self { inner: Mutex::new(Inner { max, ..Inner::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame; `Full` when the client is too far behind.
    pub fn push(&self, frame: Frame) -> Result<(), SendError> {
        self.push_all(std::iter::once(frame), 1)
    }

    /// Queues `n` frames that belong together (a packet and its binary
    /// attachments): all or none.
    pub fn push_all(&self, frames: impl IntoIterator<Item = Frame>, n: usize) -> Result<(), SendError> {
        let mut o = self.lock();
        if o.closing.is_some() {
            return Err(SendError::Closed);
        }
        if o.frames.len() + n > (o.max as usize).max(n) {
            return Err(SendError::Full);
        }
        o.frames.extend(frames);
        let waker = o.waker.take();
        drop(o);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Frames queued and not yet taken by the transport.
    pub fn queued(&self) -> usize {
        self.lock().frames.len()
    }

    /// Closes the connection: the transport ends it after writing what is
    /// queued (at once for [`CloseReason::SlowClient`]).
    pub fn close(&self, reason: CloseReason) {
        let waker = {
            let mut o = self.lock();
            o.closing.get_or_insert(reason);
            o.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub fn is_closing(&self) -> bool {
        self.lock().closing.is_some()
    }

    /// Takes every queued frame, and whether the connection must close.
    pub(crate) fn drain(&self) -> (VecDeque<Frame>, Option<CloseReason>) {
        let mut o = self.lock();
        let frames = std::mem::take(&mut o.frames);
        (frames, o.closing)
    }

    /// Like `drain`, but when there is nothing, registers `cx` to be woken
    /// by the next push or close (under the same lock: no lost wake-up).
    pub(crate) fn poll_drain(&self, cx: &Context<'_>) -> Poll<(VecDeque<Frame>, Option<CloseReason>)> {
        let mut o = self.lock();
        if o.frames.is_empty() && o.closing.is_none() {
            if !o.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                o.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready((std::mem::take(&mut o.frames), o.closing))
    }

    /// Ready when there is something to take; otherwise registers `cx`.
    pub(crate) fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut o = self.lock();
        if o.frames.is_empty() && o.closing.is_none() {
            o.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// Why the connection is closing, if it is; otherwise registers `cx`
    /// to be woken by the next push or close.
    pub(crate) fn poll_closing(&self, cx: &Context<'_>) -> Option<CloseReason> {
        let mut o = self.lock();
        if o.closing.is_none() && !o.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            o.waker = Some(cx.waker().clone());
        }
        o.closing
    }

    /// Wakes whoever waits on this outbox (a long-poll GET being superseded).
    pub(crate) fn wake(&self) {
        let waker = self.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_fits_the_allocators_80_byte_class_with_its_arc() {
        // One per connection: 64 here plus the Arc's two counts.
        assert!(std::mem::size_of::<Outbox>() <= 64, "{}", std::mem::size_of::<Outbox>());
    }

    #[test]
    fn is_bounded_and_closes() {
        let s = Outbox::new(2);
        assert!(s.push(Frame::text("a")).is_ok());
        assert!(s.push(Frame::text("b")).is_ok());
        assert_eq!(s.push(Frame::text("c")), Err(SendError::Full));
        let (frames, closing) = s.drain();
        assert_eq!(frames.len(), 2);
        assert!(closing.is_none());
        let packet = [Frame::text("451-[]"), Frame::Binary(Bytes::from_static(b"\x01"))];
        assert!(s.push_all(packet.clone(), 2).is_ok(), "a packet and its attachment go together");
        assert_eq!(s.push_all(packet, 2), Err(SendError::Full), "all or none");
        assert_eq!(s.queued(), 2);
        s.close(CloseReason::ServerShutdown);
        assert_eq!(s.push(Frame::text("d")), Err(SendError::Closed));
    }
}
