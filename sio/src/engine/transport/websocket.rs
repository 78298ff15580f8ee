//! WebSocket connections: a new one, or the upgrade of a polling session;
//! each is one task, the [`Session`] state machine.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;

use crate::BoxFuture;
use crate::engine::protocol::{Message, Protocol};
use crate::engine::server::{PollSession, Server, open_packet};
use crate::outbox::{CloseReason, Frame, Outbox};
use crate::ws::{CLOSE_GOING_AWAY, CLOSE_NORMAL, Incoming, WebSocket};

/// How long a closing connection may take to accept its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The next text message before `deadline`, answering pings on the way;
/// `None` when the client closed, broke the protocol or took too long.
pub(crate) async fn next_text(ws: &mut WebSocket, deadline: Instant) -> Option<String> {
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await.ok()?? {
            Incoming::Text(t) => return Some(t),
            Incoming::Ping(p) => {
                let _ = ws.pong(&p).await;
            }
            Incoming::Binary(_) | Incoming::Close => return None,
        }
    }
}

/// A websocket session from an upgrade: a new one, or the upgrade of a
/// polling session (`existing`); `Some(None)` is a sid this process does not
/// hold, which is closed at once as the reference server does.
pub(crate) async fn open_websocket<P: Protocol>(
    srv: Arc<Server<P>>,
    on_upgrade: OnUpgrade,
    existing: Option<Option<(String, Arc<PollSession<P>>)>>,
    outer: Option<String>,
) -> Option<Session<P>> {
    let io = on_upgrade.await.ok()?;
    let socket = WebSocket::new(io, srv.config.max_payload);
    let (socket, outbox, conn) = match existing {
        None => start_websocket(&srv, socket, outer).await?,
        Some(Some((sid, session))) => start_upgrade(&srv, socket, sid, session).await?,
        Some(None) => {
            let mut socket = socket;
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(CLOSE_NORMAL)).await;
            return None;
        }
    };
    Some(Session::new(srv, socket, outbox, conn))
}

/// A connection that starts on websocket: the open packet.
pub(crate) async fn start_websocket<P: Protocol>(
    srv: &Arc<Server<P>>,
    mut ws: WebSocket,
    outer_token: Option<String>,
) -> Option<(WebSocket, Arc<Outbox>, P::Conn)> {
    ws.send_text(open_packet(&srv.new_sid(), false, &srv.config).as_bytes()).await.ok()?;
    let outbox = Arc::new(Outbox::new(srv.config.max_buffer));
    let conn = srv.protocol.open(&outbox, outer_token, &srv.config);
    Some((ws, outbox, conn))
}

/// A polling session moving to websocket (the "probe" dance of the spec).
/// `None` when the upgrade is abandoned (the polling session carries on).
pub(crate) async fn start_upgrade<P: Protocol>(
    srv: &Arc<Server<P>>,
    mut ws: WebSocket,
    sid: String,
    session: Arc<PollSession<P>>,
) -> Option<(WebSocket, Arc<Outbox>, P::Conn)> {
    let deadline = Instant::now() + srv.config.ping_timeout.max(Duration::from_secs(1));
    let probed = async {
        loop {
            match next_text(&mut ws, deadline).await?.as_str() {
                "2probe" => {
                    ws.send_text(b"3probe").await.ok()?;
                    // A pending poll returns a noop, so the client can send the upgrade packet.
                    session.upgrading.store(true, Ordering::SeqCst);
                    session.outbox.wake();
                }
                "5" => return Some(()),
                _ => return None,
            }
        }
    };
    if probed.await.is_none() {
        session.upgrading.store(false, Ordering::Release);
        return None;
    }
    // A POST may still be in flight: let it finish first, then take the state.
    let conn = session.conn.lock().await.take();
    session.upgraded.store(true, Ordering::SeqCst);
    srv.forget(&sid);
    // A GET may still be waiting: wake it so it returns (the client ignores it).
    session.outbox.wake();
    conn.map(|c| (ws, Arc::clone(&session.outbox), c))
}

/// A websocket connection's one task, written as a state machine by hand:
/// these fields are all an idle connection holds (an `async fn` with a
/// `select!` would keep every branch's future, ≈1 KB more per socket).
///
/// Each poll: write what is queued (the outbox, then a pong), run the work
/// of the message being handled, read and dispatch messages (one at a time,
/// in order), and keep the heartbeat. Once it decides to end, it sends a
/// close frame when there is a reason to give, and resolves.
pub(crate) struct Session<P: Protocol> {
    pub(crate) srv: Arc<Server<P>>,
    outbox: Arc<Outbox>,
    ws: WebSocket,
    pub(crate) conn: P::Conn,
    /// Runs to the next ping (or the handshake deadline), or to the pong
    /// deadline while one is due.
    timer: Pin<Box<tokio::time::Sleep>>,
    next_ping: Instant,
    pong_due: bool,
    /// Why the connection ends, once it does.
    why: CloseReason,
    /// The work of the message being handled; reading waits until it is done.
    pub(crate) handling: Option<BoxFuture<P::Update>>,
    /// Frames taken from the outbox and not yet fully written, and how far.
    out: VecDeque<Frame>,
    cursor: (usize, usize),
    /// A pong owed to a websocket ping.
    pong: Option<Box<[u8]>>,
    /// Close (with this code) once everything queued is written.
    closing: Option<u16>,
    /// Ending: the close frame being written (`cursor` tracks it).
    ending: Option<u16>,
}

/// What a poll step decided.
pub(crate) enum Step {
    /// Something happened: go round again.
    Progress,
    /// Waiting (every source registered the task's waker).
    Idle,
    /// The connection is over; close with this code, if any.
    End(Option<u16>),
}

impl<P: Protocol> Session<P> {
    pub(crate) fn new(srv: Arc<Server<P>>, ws: WebSocket, outbox: Arc<Outbox>, conn: P::Conn) -> Self {
        let next_ping = Instant::now() + srv.config.ping_interval;
        let first = srv.protocol.deadline(&conn).map_or(next_ping, |d| d.min(next_ping));
        Self {
            srv,
            outbox,
            ws,
            conn,
            timer: Box::pin(tokio::time::sleep_until(first)),
            next_ping,
            pong_due: false,
            why: CloseReason::ClientClosed,
            handling: None,
            out: VecDeque::new(),
            cursor: (0, 0),
            pong: None,
            closing: None,
            ending: None,
        }
    }

    pub(crate) fn end(&mut self, why: CloseReason, code: Option<u16>) -> Step {
        self.why = why;
        Step::End(code)
    }

    /// Writes queued frames and refills from the outbox until either is dry.
    pub(crate) fn poll_writes(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            if !self.out.is_empty() {
                let frames = self.out.make_contiguous();
                match self.ws.poll_write(cx, frames, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.out = VecDeque::new(); // hold no buffer while idle
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return self.end(CloseReason::ClientClosed, None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if let Some(p) = &self.pong {
                match self.ws.poll_write_pong(cx, p, &mut self.cursor) {
                    Poll::Ready(Ok(())) => {
                        self.pong = None;
                        self.cursor = (0, 0);
                    }
                    Poll::Ready(Err(_)) => return self.end(CloseReason::ClientClosed, None),
                    Poll::Pending => return self.blocked(cx),
                }
            }
            if self.closing.is_some() {
                return Step::End(self.closing);
            }
            match self.outbox.poll_drain(cx) {
                Poll::Ready((frames, closing)) => {
                    self.out = frames;
                    if let Some(reason) = closing {
                        // Close the transport, not the Socket.IO session: clients retry.
                        self.why = reason;
                        self.closing = Some(CLOSE_GOING_AWAY);
                    }
                }
                Poll::Pending => return Step::Idle,
            }
        }
    }

    /// The socket takes no more for now. A client the application dropped
    /// as too slow is not waited for (its frames would never drain);
    /// otherwise wait for the socket, or for a close.
    pub(crate) fn blocked(&mut self, cx: &mut Context<'_>) -> Step {
        match self.outbox.poll_closing(cx) {
            Some(CloseReason::SlowClient) => self.end(CloseReason::SlowClient, None),
            _ => Step::Idle,
        }
    }

    /// Runs the work of the message being handled; its replies land in the outbox.
    pub(crate) fn poll_handling(&mut self, cx: &mut Context<'_>) -> Step {
        match self.handling.as_mut().map(|h| h.as_mut().poll(cx)) {
            Some(Poll::Ready(update)) => {
                self.handling = None;
                self.srv.protocol.apply(&mut self.conn, update);
                self.rearm();
                Step::Progress
            }
            _ => Step::Idle,
        }
    }

    /// Reads one message and acts on it.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Step {
        if self.handling.is_some() || self.closing.is_some() {
            return Step::Idle;
        }
        let msg = match self.ws.poll_recv(cx) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(None) => return self.end(CloseReason::ClientClosed, None),
            Poll::Ready(Some(Err(v))) => return self.end(CloseReason::ProtocolError, Some(v.code)),
            Poll::Ready(Some(Ok(Incoming::Close))) => return self.end(CloseReason::ClientClosed, Some(CLOSE_NORMAL)),
            Poll::Ready(Some(Ok(Incoming::Ping(p)))) => {
                self.pong = Some(p.into_boxed_slice());
                return Step::Progress;
            }
            Poll::Ready(Some(Ok(m))) => m,
        };
        let text;
        let msg = match msg {
            Incoming::Text(t) => {
                text = t;
                match text.split_at_checked(1) {
                    Some(("3", _)) => {
                        if self.pong_due {
                            self.pong_due = false;
                            self.rearm();
                        }
                        return Step::Progress;
                    }
                    Some(("4", rest)) => Message::Text(rest),
                    Some(("1", _)) => return self.end(CloseReason::ClientClosed, Some(CLOSE_NORMAL)),
                    Some(("5" | "6", _)) => return Step::Progress, // upgrade (already done), noop
                    _ => return self.end(CloseReason::ProtocolError, Some(CLOSE_NORMAL)),
                }
            }
            Incoming::Binary(b) => Message::Binary(b),
            Incoming::Ping(_) | Incoming::Close => return Step::Progress,
        };
        match self.srv.protocol.message(&mut self.conn, &self.outbox, msg) {
            Ok(None) => {}
            Ok(Some(work)) => self.handling = Some(work),
            Err(reason) => {
                tracing::debug!(reason, "closing a websocket on a malformed packet");
                return self.end(CloseReason::ProtocolError, Some(CLOSE_NORMAL));
            }
        }
        Step::Progress
    }

    /// Sets the timer to the next thing due: the pong deadline while a ping
    /// is unanswered, else the next ping; the protocol's handshake deadline
    /// when that comes first.
    pub(crate) fn rearm(&mut self) {
        let c = &self.srv.config;
        let mut wake = if self.pong_due { self.next_ping - c.ping_interval + c.ping_timeout } else { self.next_ping };
        if let Some(d) = self.srv.protocol.deadline(&self.conn) {
            wake = wake.min(d);
        }
        self.timer.as_mut().reset(wake);
    }

    /// The heartbeat, and the protocol's handshake deadline.
    pub(crate) fn poll_timer(&mut self, cx: &mut Context<'_>) -> Step {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Step::Idle;
        }
        let now = Instant::now();
        if self.srv.protocol.deadline(&self.conn).is_some_and(|d| now >= d) {
            tracing::debug!("handshake timeout");
            self.srv.protocol.expired(&self.conn);
            return self.end(CloseReason::Timeout, Some(CLOSE_NORMAL));
        }
        let c = self.srv.config;
        if self.pong_due {
            if now >= self.next_ping - c.ping_interval + c.ping_timeout {
                tracing::debug!("ping timeout");
                return self.end(CloseReason::Timeout, None);
            }
        } else if now >= self.next_ping {
            self.outbox.push(Frame::Text(Bytes::from_static(b"2"))).ok();
            self.pong_due = true;
            self.next_ping = now + c.ping_interval;
        }
        self.rearm();
        Step::Progress
    }
}

impl<P: Protocol> Future for Session<P> {
    type Output = CloseReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CloseReason> {
        let this = self.get_mut();
        loop {
            if let Some(code) = this.ending {
                // Whether the close frame makes it or not, the connection is
                // over; a peer that does not take it within the grace is cut.
                if this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(this.why);
                }
                return this.ws.poll_close(cx, code, &mut this.cursor).map(|_| this.why);
            }
            let mut progress = false;
            for step in [Self::poll_writes, Self::poll_handling, Self::poll_read, Self::poll_timer] {
                match step(this, cx) {
                    Step::End(None) => return Poll::Ready(this.why),
                    Step::End(Some(code)) => {
                        // A frame cut short cannot be followed by a close frame.
                        if this.cursor.1 != 0 {
                            return Poll::Ready(this.why);
                        }
                        this.ending = Some(code);
                        this.cursor = (0, 0);
                        this.timer.as_mut().reset(Instant::now() + CLOSE_GRACE);
                        progress = true;
                        break;
                    }
                    Step::Progress => progress = true,
                    Step::Idle => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

impl<P: Protocol> Unpin for Session<P> {}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use serde_json::Value;

    use super::*;
    use crate::{BoxFuture, Connect, DisconnectReason, Event, Handler, SocketIo};

    struct Nothing;

    impl Handler for Nothing {
        type State = NonZeroU64;

        fn connect(self: &Arc<Self>, _: Connect) -> BoxFuture<Result<NonZeroU64, Value>> {
            Box::pin(async { Err(Value::Null) })
        }

        fn event(self: &Arc<Self>, _: &NonZeroU64, _: crate::Socket, _: Event) -> BoxFuture<()> {
            Box::pin(async {})
        }

        fn disconnect(self: &Arc<Self>, _: NonZeroU64, _: DisconnectReason) -> Option<BoxFuture<()>> {
            None
        }
    }

    #[test]
    fn a_session_keeps_its_connection_task_in_tokios_384_byte_step() {
        // The connection's task holds a session and ≈ 24 bytes more; tokio's
        // task cell (its header and trailer ≈ 100 bytes) is 128-aligned, so
        // a session up to ≈ 256 bytes keeps the task at 384 (it was 512
        // with the session at 272). Measured: 224 in a release build, 232 in
        // a test build. Growing past this shows in the idle bench as 128
        // bytes per connection.
        let size = std::mem::size_of::<Session<SocketIo<Nothing>>>();
        assert!(size <= 248, "Session is {size} bytes");
    }
}
