//! OmniBiz gateway: holds the Socket.IO connections and relays events.
//!
//! # Layout
//! - `transport/`: the boundary ([`transport::Connection`], [`transport::OutEvent`])
//!   and the gateway's [`omnibiz_sio::Handler`] (`transport::socketio`); the
//!   Engine.IO / Socket.IO protocol itself is the `omnibiz-sio` crate (`sio/`).
//! - [`hub`]: the core — local room index, event handling, fan-out of bus
//!   events, typing expiry, presence, rate limits.
//! - `subscriptions`: reference-counted bus subscriptions per conversation
//!   and per principal.
//! - `dedupe`: seq bookkeeping (`lastSeq` replay meets live events with no
//!   gap and no duplicate; each room delivers a stored message once).
//! - `events`: parsing of incoming payloads.
//!
//! # How it works
//! A client connects with a JWT (`auth.token`, `Authorization`, or `?token=`
//! when `allow_query_token` is set);
//! the hub verifies it, loads the account and joins the socket to its
//! personal room. `join_conversation` checks participation, subscribes this
//! gateway to the conversation's bus topic if it is the first local member,
//! replays stored messages after `lastSeq` if given, then delivers live
//! ones. Sends go through the shared messaging service (store first, then
//! publish); every gateway with members in that conversation receives the
//! envelope once and fans it out to its local sockets. A socket whose
//! outgoing buffer fills up is dropped rather than buffered without bound.
//! When the bus was away (a Redis reconnect) or fell behind, the hub
//! re-fetches from the store what its rooms missed (`Hub::resync`), so live
//! sockets lose nothing without having to rejoin.

pub mod dedupe;
pub mod events;
pub mod hub;
pub mod subscriptions;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use omnibiz_service::auth::Verifier;
use omnibiz_service::messaging::Messaging;
use omnibiz_service::presence::Presence;

pub use hub::Hub;
use omnibiz_sio::Locator;
pub use transport::nodes::Cluster;
use transport::nodes::NodeLocator;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Connections this process accepts before refusing new ones.
    pub max_connections: usize,
    /// Outgoing packets queued per socket before it is dropped as slow.
    pub max_buffer: usize,
    /// A typing state with no stop ends after this.
    pub typing_expiry: Duration,
    /// How often presence is re-asserted (a third of its TTL).
    pub heartbeat: Duration,
    /// Messages per page when replaying after `lastSeq`.
    pub replay_page: usize,
    /// Benchmark mode: `send_message` relays without storing (like the Node
    /// reference peer, which has no database). Never for production.
    pub relay_only: bool,
    /// Engine.IO heartbeat: a ping every `ping_interval`, answered within `ping_timeout`.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Conversations one connection may have joined at once.
    pub max_rooms_per_socket: usize,
    /// Sockets one principal may hold open at once, across every gateway
    /// (rates per principal are the messaging service's [`omnibiz_service::limits`]).
    pub max_sockets_per_principal: usize,
    /// Largest message a client may send (socket.io's `maxHttpBufferSize`).
    pub max_payload: usize,
    /// Time a new connection has to send its CONNECT (sign in).
    pub connect_packet_timeout: Duration,
    /// Accept a token in the `?token=` query parameter (it lands in proxy logs).
    pub query_token: bool,
    /// How often the accounts of connected principals are checked (deleted ones end their sessions).
    pub account_check: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_connections: 19_000,
            max_buffer: 256,
            typing_expiry: Duration::from_secs(3),
            heartbeat: Duration::from_secs(10),
            replay_page: 100,
            relay_only: false,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_rooms_per_socket: 100,
            max_sockets_per_principal: 20,
            max_payload: 128 * 1024,
            connect_packet_timeout: Duration::from_secs(10),
            query_token: false,
            account_check: Duration::from_secs(30),
        }
    }
}

/// A running gateway core and its Socket.IO routes.
pub struct Gateway {
    pub hub: Arc<Hub>,
    pub router: Router,
    /// This gateway's node name in a cluster (the prefix of its sids).
    pub node: Option<String>,
}

impl Gateway {
    /// Builds the hub, starts its bus dispatcher and presence heartbeat, and
    /// returns the `/socket.io` routes to mount.
    pub fn start(
        messaging: Messaging,
        verifier: Arc<Verifier>,
        presence: Arc<dyn Presence>,
        config: GatewayConfig,
        cluster: Option<Cluster>,
    ) -> Self {
        let resyncs = messaging.bus().resyncs();
        let heartbeat = config.heartbeat;
        let account_check = config.account_check;
        let opts = omnibiz_sio::Config {
            max_buffer: config.max_buffer,
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            max_payload: config.max_payload,
            connect_packet_timeout: config.connect_packet_timeout,
            query_token: config.query_token,
            ..Default::default()
        };
        let bus = Arc::clone(messaging.bus());
        let hub = Hub::new(messaging, verifier, presence, config);
        // Straight from the task reading the bus into the hub where the bus
        // can (Redis); else through its broadcast channel and a task.
        let weak = Arc::downgrade(&hub);
        let sink: omnibiz_service::bus::Sink = Arc::new(move |event| {
            if let Some(h) = weak.upgrade() {
                h.dispatch(event);
            }
        });
        if !bus.deliver_to(sink) {
            hub::spawn_dispatcher(Arc::downgrade(&hub), bus.deliveries());
        }
        if let Some(resyncs) = resyncs {
            hub::spawn_resync(Arc::downgrade(&hub), resyncs);
        }
        hub::spawn_heartbeat(Arc::downgrade(&hub), heartbeat);
        hub::spawn_session_expiry(Arc::downgrade(&hub), Duration::from_secs(1));
        hub::spawn_account_check(Arc::downgrade(&hub), account_check);
        let locator = cluster.map(|c| {
            let locator = NodeLocator::new(Arc::clone(&c.directory));
            spawn_announcer(c, locator.node().to_owned(), heartbeat);
            locator as Arc<dyn Locator>
        });
        let node = locator.as_ref().map(|l| l.node().to_owned());
        let handler = transport::socketio::GatewayHandler::new(Arc::clone(&hub));
        let router = omnibiz_sio::socket_io(handler, opts, "/socket.io", locator);
        Self { hub, router, node }
    }
}

/// Keeps this gateway's entry in the directory fresh (three heartbeats'
/// worth of TTL, refreshed every heartbeat).
fn spawn_announcer(cluster: Cluster, node: String, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            cluster.directory.announce(&node, cluster.advertise, every * 3).await;
        }
    });
}
