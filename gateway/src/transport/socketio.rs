//! The gateway as a Socket.IO application: [`GatewayHandler`] implements
//! [`omnibiz_sio::Handler`] over the [`Hub`]. Connect authenticates (the
//! `auth.token` of the CONNECT packet, else the `Authorization` header or,
//! when allowed, `?token=`) and registers the connection's outbox with the hub; each
//! event goes to [`Hub::handle`], whose reply comes back as the event's ack
//! and, on failure, a `message_error`.

use std::sync::Arc;

use omnibiz_sio::{BoxFuture, Connect, DisconnectReason, Event, Handler, Socket};
use serde_json::{Value, json};

use super::{CloseReason, ConnId, Connection, OutEvent, SendError};
use crate::hub::Hub;

pub struct GatewayHandler {
    hub: Arc<Hub>,
}

impl GatewayHandler {
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(Self { hub })
    }
}

/// The token in a CONNECT payload (`{token}`; a `Bearer ` prefix is tolerated).
fn token_from_auth(auth: &Value) -> Option<String> {
    auth.get("token").and_then(Value::as_str).map(|t| t.trim_start_matches("Bearer ").to_owned())
}

impl Handler for GatewayHandler {
    type State = ConnId;

    fn connect(self: &Arc<Self>, c: Connect) -> BoxFuture<Result<ConnId, Value>> {
        let hub = Arc::clone(&self.hub);
        Box::pin(async move {
            let token = token_from_auth(&c.auth).or(c.token);
            match hub.admit(token.as_deref()).await {
                Ok(admitted) => {
                    let handle: Arc<dyn Connection> = Arc::clone(c.socket.outbox()) as Arc<dyn Connection>;
                    Ok(hub.register(handle, admitted))
                }
                Err(message) => Err(json!({ "message": message })),
            }
        })
    }

    fn connected(self: &Arc<Self>, id: &ConnId, _: &Socket) -> Option<BoxFuture<()>> {
        let (hub, id) = (Arc::clone(&self.hub), *id);
        Some(Box::pin(async move { hub.connected(id).await }))
    }

    fn event(self: &Arc<Self>, id: &ConnId, socket: Socket, event: Event) -> BoxFuture<()> {
        let (hub, id) = (Arc::clone(&self.hub), *id);
        Box::pin(async move {
            let data = event.args.into_iter().next().unwrap_or(Value::Null);
            let Some(reply) = hub.handle(id, &event.name, data).await else { return };
            let mut result = Ok(());
            if let Some(err) = reply.message_error {
                result = result.and(socket.outbox().send(&OutEvent::new("message_error", err)));
            }
            if let Some(ack) = event.ack {
                result = result.and(socket.ack_raw(ack, &reply.ack));
            }
            if result == Err(SendError::Full) {
                metrics::counter!("gateway_slow_clients_dropped_total").increment(1);
                socket.outbox().close(CloseReason::SlowClient);
            }
        })
    }

    fn disconnect(self: &Arc<Self>, id: ConnId, _: DisconnectReason) -> Option<BoxFuture<()>> {
        let hub = Arc::clone(&self.hub);
        Some(Box::pin(async move { hub.disconnected(id).await }))
    }

    fn handshake_timed_out(self: &Arc<Self>) {
        metrics::counter!("gateway_connections_refused_total", "reason" => "handshake_timeout").increment(1);
    }

    /// Connections still in their handshake count against the cap too: a
    /// flood that never signs in cannot hold more than the gateway's capacity.
    fn at_capacity(&self, pending: usize) -> bool {
        let full = self.hub.connections() + pending >= self.hub.max_connections();
        if full {
            metrics::counter!("gateway_connections_refused_total", "reason" => "capacity").increment(1);
        }
        full
    }

    fn handshake_completed(self: &Arc<Self>, took: std::time::Duration) {
        metrics::histogram!("gateway_handshake_duration_seconds").record(took.as_secs_f64());
    }
}
