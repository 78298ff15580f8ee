//! HTTP long-polling: the handshake, POSTed packets, waiting GETs, the
//! heartbeat of a polling session, and its end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use base64::Engine as _;
use tokio::time::Instant;

use crate::engine::protocol::{Message, Protocol};
use crate::engine::server::{PollSession, Server, bad_request, open_packet, text};
use crate::outbox::{CloseReason, Frame, Outbox};

/// Engine.IO record separator between packets in a polling payload.
pub(crate) const SEPARATOR: char = '\u{1e}';

/// The rest of a POST once its body is read: its packets, in order.
pub(crate) async fn handle_post<P: Protocol>(
    srv: Arc<Server<P>>,
    sid: String,
    session: Arc<PollSession<P>>,
    body: Bytes,
) -> Response {
    let mut guard = session.conn.lock().await;
    let Some(conn) = guard.as_mut() else { return bad_request("Bad request") };
    let outcome = match std::str::from_utf8(&body) {
        Ok(body) => handle_payload(&srv, &session, conn, body).await,
        Err(_) => Err(CloseReason::ProtocolError),
    };
    match outcome {
        Ok(()) => text("ok".into()),
        Err(reason) => {
            let conn = guard.take();
            drop(guard);
            finish(&srv, &sid, &session, reason, conn).await;
            if reason == CloseReason::ClientClosed { text("ok".into()) } else { bad_request("Bad request") }
        }
    }
}

/// Handles the packets of one POST, in order; `Err` closes the session.
pub(crate) async fn handle_payload<P: Protocol>(
    srv: &Arc<Server<P>>,
    session: &Arc<PollSession<P>>,
    conn: &mut P::Conn,
    body: &str,
) -> Result<(), CloseReason> {
    for packet in body.split(SEPARATOR) {
        let msg = match packet.split_at_checked(1) {
            Some(("1", _)) => return Err(CloseReason::ClientClosed),
            Some(("3", _)) => {
                *session.pong_by() = None;
                continue;
            }
            Some(("6", _)) => continue,
            Some(("4", rest)) => Message::Text(rest),
            Some(("b", b64)) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => Message::Binary(bytes),
                Err(_) => return Err(CloseReason::ProtocolError),
            },
            _ => return Err(CloseReason::ProtocolError),
        };
        match srv.protocol.message(conn, &session.outbox, msg) {
            Ok(None) => {}
            Ok(Some(work)) => {
                let update = work.await;
                srv.protocol.apply(conn, update);
            }
            Err(reason) => {
                tracing::debug!(reason, "closing a polling session on a malformed packet");
                return Err(CloseReason::ProtocolError);
            }
        }
    }
    Ok(())
}

pub(crate) fn handshake_polling<P: Protocol>(srv: &Arc<Server<P>>, outer_token: Option<String>) -> Response {
    let sid = srv.new_sid();
    let outbox = Arc::new(Outbox::new(srv.config.max_buffer));
    let conn = srv.protocol.open(&outbox, outer_token, &srv.config);
    let session = Arc::new(PollSession {
        outbox,
        conn: tokio::sync::Mutex::new(Some(conn)),
        polling: AtomicBool::new(false),
        posting: AtomicBool::new(false),
        upgraded: AtomicBool::new(false),
        upgrading: AtomicBool::new(false),
        pong_by: Mutex::new(None),
        lingering: AtomicBool::new(false),
    });
    srv.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(sid.clone(), Arc::clone(&session));
    tokio::spawn(supervise_polling(Arc::clone(srv), sid.clone(), session));
    text(open_packet(&sid, true, &srv.config))
}

/// The heartbeat of a polling session: a ping every interval, a pong within
/// the timeout; also ends it when the protocol's handshake is overdue or the
/// application closed it.
pub(crate) async fn supervise_polling<P: Protocol>(srv: Arc<Server<P>>, sid: String, session: Arc<PollSession<P>>) {
    let c = srv.config;
    let mut next_ping = Instant::now() + c.ping_interval;
    loop {
        let deadline = match session.conn.try_lock() {
            Ok(g) => g.as_ref().and_then(|conn| srv.protocol.deadline(conn)),
            Err(_) => None,
        };
        let wake = deadline.map_or(next_ping, |d| d.min(next_ping));
        tokio::time::sleep_until(wake).await;
        if session.upgraded.load(Ordering::Acquire) {
            return; // the websocket task owns the connection now
        }
        if session.outbox.is_closing() {
            let (_, reason) = session.outbox.drain();
            finish(&srv, &sid, &session, reason.unwrap_or(CloseReason::ServerShutdown), None).await;
            return;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let overdue = match session.conn.try_lock() {
                Ok(g) => g.as_ref().and_then(|conn| srv.protocol.deadline(conn)).is_some_and(|d| now >= d),
                Err(_) => {
                    // A POST is being handled (maybe the CONNECT itself): look
                    // again shortly rather than spin on a deadline in the past.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if overdue {
                if let Ok(g) = session.conn.try_lock()
                    && let Some(conn) = g.as_ref()
                {
                    srv.protocol.expired(conn);
                }
                finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
                return;
            }
        }
        if now < next_ping {
            continue;
        }
        let pong_by = next_ping + c.ping_timeout;
        *session.pong_by() = Some(pong_by);
        if session.outbox.push(Frame::Text(Bytes::from_static(b"2"))).is_err() {
            finish(&srv, &sid, &session, CloseReason::SlowClient, None).await;
            return;
        }
        tokio::time::sleep_until(pong_by).await;
        if session.upgraded.load(Ordering::Acquire) {
            return;
        }
        if session.timed_out() {
            finish(&srv, &sid, &session, CloseReason::Timeout, None).await;
            return;
        }
        next_ping += c.ping_interval;
    }
}

/// Ends a polling session: forgets it, closes its outbox (a waiting GET
/// answers) and tells the protocol. `conn` when the caller already took it.
///
/// A session the client closed is not forgotten at once. Its requests
/// travel on separate connections and are handled by separate tasks, so
/// the POST carrying its CLOSE can be handled before a GET the client sent
/// earlier (a browser polls again as soon as a poll answers, then runs the
/// application's handler that closes). That GET is legitimate: it gets the
/// noop a waiting GET would have got, not "Session ID unknown" (a 400 the
/// browser logs as an error). The first GET to take the noop forgets the
/// session; one never comes at most a heartbeat later (interval + timeout,
/// the longest a request of a live client can be under way).
pub(crate) async fn finish<P: Protocol>(
    srv: &Arc<Server<P>>,
    sid: &str,
    session: &Arc<PollSession<P>>,
    reason: CloseReason,
    conn: Option<P::Conn>,
) {
    if reason == CloseReason::ClientClosed {
        if !session.lingering.swap(true, Ordering::AcqRel) {
            let (srv, sid) = (Arc::clone(srv), sid.to_owned());
            let grace = srv.config.ping_interval + srv.config.ping_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                srv.forget(&sid);
            });
        }
    } else {
        srv.forget(sid);
    }
    session.outbox.close(reason);
    let conn = match conn {
        Some(c) => Some(c),
        None => session.conn.lock().await.take(),
    };
    if let Some(conn) = conn
        && let Some(work) = srv.protocol.close(conn, reason)
    {
        work.await;
    }
}

/// A long-poll GET: waits for frames and returns them (a ping comes every
/// interval, so it never waits much longer than that).
pub(crate) async fn poll<P: Protocol>(srv: &Arc<Server<P>>, sid: &str) -> Response {
    let Some(session) = srv.session(sid) else { return bad_request("Session ID unknown") };
    if session.lingering.load(Ordering::Acquire) {
        // The poll the client's close overtook (see `finish`): its noop, once.
        srv.forget(sid);
        return text("6".into());
    }
    if session.upgraded.load(Ordering::Acquire) {
        return bad_request("Bad request");
    }
    if session.timed_out() {
        finish(srv, sid, &session, CloseReason::Timeout, None).await;
        return bad_request("Session ID unknown");
    }
    if session.polling.swap(true, Ordering::AcqRel) {
        // Two GETs at once: the client is confused; end the session (the
        // waiting GET answers with a CLOSE packet).
        finish(srv, sid, &session, CloseReason::ProtocolError, None).await;
        return bad_request("Bad request");
    }
    let c = srv.config;
    let deadline = Instant::now() + c.ping_interval + c.ping_timeout;
    let (frames, closing) = loop {
        if session.upgrading.load(Ordering::Acquire) || session.upgraded.load(Ordering::Acquire) {
            // Superseded by the websocket: a noop; what is queued goes there.
            break (VecDeque::new(), None);
        }
        let (frames, closing) = session.outbox.drain();
        if !frames.is_empty() || closing.is_some() {
            break (frames, closing);
        }
        // Register for a wake-up first, then look at the flags again: an
        // upgrade that sets its flag and wakes in between is not missed.
        let ready = std::future::poll_fn(|cx| {
            let r = session.outbox.poll_ready(cx);
            if session.upgrading.load(Ordering::SeqCst) || session.upgraded.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            r
        });
        if tokio::time::timeout_at(deadline, ready).await.is_err() {
            break (frames, None);
        }
    };
    session.polling.store(false, Ordering::Release);
    if closing.is_some() {
        // This answer tells the client the session is over: nothing more to wait for.
        srv.forget(sid);
    }
    text(polling_payload(&frames, closing))
}

/// Frames as one polling payload: text packets as they are, binary ones as
/// `b` + base64, separated by the record separator; a CLOSE packet when the
/// server ends the session (a noop when the client did, or when empty).
pub(crate) fn polling_payload(frames: &VecDeque<Frame>, closing: Option<CloseReason>) -> String {
    let mut body = String::new();
    for f in frames {
        if !body.is_empty() {
            body.push(SEPARATOR);
        }
        match f {
            Frame::Text(t) => body.push_str(std::str::from_utf8(t).unwrap_or_default()),
            Frame::Binary(b) => {
                body.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut body);
            }
        }
    }
    match closing {
        Some(CloseReason::ClientClosed) | None if body.is_empty() => body.push('6'),
        Some(CloseReason::ClientClosed) | None => {}
        Some(_) => {
            if !body.is_empty() {
                body.push(SEPARATOR);
            }
            body.push('1');
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_payloads_carry_binary_as_base64() {
        let frames: VecDeque<Frame> =
            [Frame::text("4hello"), Frame::Binary(Bytes::from_static(&[1, 2, 3, 4]))].into_iter().collect();
        assert_eq!(polling_payload(&frames, None), "4hello\u{1e}bAQIDBA==");
        assert_eq!(polling_payload(&VecDeque::new(), None), "6");
        assert_eq!(polling_payload(&VecDeque::new(), Some(CloseReason::ClientClosed)), "6");
        assert_eq!(polling_payload(&VecDeque::new(), Some(CloseReason::ProtocolError)), "1");
        assert_eq!(polling_payload(&frames, Some(CloseReason::ServerShutdown)), "4hello\u{1e}bAQIDBA==\u{1e}1");
    }
}
