//! The Socket.IO protocol layer on `socketioxide` (Engine.IO v4 / Socket.IO
//! v5; websocket, and polling with upgrade). It only translates: connect
//! auth → [`Hub::admit`], events → [`Hub::handle`], disconnect →
//! [`Hub::disconnected`]; the hub never sees a socketioxide type.

use std::sync::Arc;

use axum::http::request::Parts;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::DisconnectReason;

use super::{CloseReason, ConnId, Connection, OutEvent, SendError};
use crate::hub::Hub;

/// Client → server events the hub understands.
const EVENTS: &[&str] = &[
    "join_conversation",
    "leave_conversation",
    "send_message",
    "typing_start",
    "typing_stop",
    "mark_read",
    "message_delivered",
];

struct SioConn(SocketRef);

impl Connection for SioConn {
    fn send(&self, event: &OutEvent) -> Result<(), SendError> {
        use socketioxide::SendError as E;
        use socketioxide::SocketError as S;
        match self.0.emit(event.name, &event.data) {
            Ok(()) => Ok(()),
            Err(E::Socket(S::InternalChannelFull)) => Err(SendError::Full),
            Err(_) => Err(SendError::Closed),
        }
    }

    fn close(&self, reason: CloseReason) {
        tracing::debug!(sid = %self.0.id, ?reason, "closing socket");
        let _ = self.0.clone().disconnect();
    }
}

/// The token from `auth.token`, `Authorization: Bearer …` or `?token=`.
fn token(auth: Option<&Value>, parts: &Parts) -> Option<String> {
    if let Some(t) = auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(t.trim_start_matches("Bearer ").to_owned());
    }
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|h| h.to_str().ok()) {
        let h = h.trim();
        if let Some((scheme, t)) = h.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(t.trim().to_owned());
        }
    }
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// A refused connection; its text reaches the client as `connect_error`'s message.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Socket.IO tuning.
#[derive(Debug, Clone, Copy)]
pub struct SioOptions {
    /// Outgoing packets queued per socket before it counts as slow and is dropped.
    pub max_buffer: usize,
    /// Largest incoming packet, in bytes.
    pub max_payload: u64,
}

/// The Socket.IO routes (`/socket.io`) for this hub.
pub fn router(hub: Arc<Hub>, opts: SioOptions) -> axum::Router {
    let (svc, io) = SocketIo::builder().max_buffer_size(opts.max_buffer).max_payload(opts.max_payload).build_svc();
    // Everything that must exist before the client may send is done in the
    // middleware: socketioxide sends CONNECT and then *spawns* the connect
    // handler, so events can arrive before that handler has run.
    let admit_hub = Arc::clone(&hub);
    let middleware = move |s: SocketRef, TryData(auth): TryData<Value>| {
        let hub = Arc::clone(&admit_hub);
        async move {
            let auth = auth.ok();
            let token = token(auth.as_ref(), s.req_parts());
            let actor = hub.admit(token.as_deref()).await.map_err(Refused)?;
            let id: ConnId = hub.register(Arc::new(SioConn(s.clone())), actor);
            s.extensions.insert(id);
            for &event in EVENTS {
                let hub = Arc::clone(&hub);
                s.on(event, move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
                    let hub = Arc::clone(&hub);
                    async move {
                        let data = data.unwrap_or(Value::Null);
                        if let Some(reply) = hub.handle(id, event, data).await {
                            if let Some(err) = reply.message_error {
                                let _ = s.emit("message_error", &err);
                            }
                            let _ = ack.send(&reply.ack);
                        }
                    }
                });
            }
            s.on_disconnect(move |_s: SocketRef, reason: DisconnectReason| {
                let hub = Arc::clone(&hub);
                async move {
                    tracing::debug!(?reason, conn = id, "socket disconnected");
                    hub.disconnected(id).await;
                }
            });
            Ok::<(), Refused>(())
        }
    };
    let on_connect = move |s: SocketRef| {
        let hub = Arc::clone(&hub);
        async move {
            if let Some(id) = s.extensions.get::<ConnId>() {
                hub.connected(id).await;
            }
        }
    };
    io.ns("/", on_connect.with(middleware));
    axum::Router::new().route_service("/socket.io", svc.clone()).route_service("/socket.io/", svc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources_in_order() {
        let req = axum::http::Request::builder()
            .uri("/socket.io/?EIO=4&token=q%2Etoken")
            .header("authorization", "Bearer h.token")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let auth = serde_json::json!({"token": "a.token"});
        assert_eq!(token(Some(&auth), &parts).as_deref(), Some("a.token"));
        assert_eq!(token(None, &parts).as_deref(), Some("h.token"));
        let req = axum::http::Request::builder().uri("/socket.io/?EIO=4&token=q%2Etoken").body(()).expect("request");
        let (parts, ()) = req.into_parts();
        assert_eq!(token(None, &parts).as_deref(), Some("q.token"));
    }
}
