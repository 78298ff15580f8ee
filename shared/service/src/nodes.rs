//! Where each gateway process can be reached, so a gateway that receives a
//! request for a polling session another one holds can forward it there
//! (no load-balancer affinity; see the `omnibiz-sio` crate's `cluster`).
//!
//! Redis layout ([`RedisDirectory`]): `omnibiz:node:{<node>}` = `host:port`
//! of that gateway's HTTP listener, with a TTL the gateway refreshes on its
//! heartbeat; a gateway that dies drops out by itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::KeysInterface as _;
use fred::types::Expiration;

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// `node` is reachable at `addr` for the next `ttl`.
    async fn announce(&self, node: &str, addr: SocketAddr, ttl: Duration);
    /// Where `node` is, if it announced itself recently.
    async fn lookup(&self, node: &str) -> Option<SocketAddr>;
    /// `node` is going away.
    async fn withdraw(&self, node: &str);
}

fn key(node: &str) -> String {
    format!("omnibiz:node:{{{node}}}")
}

/// The directory in Redis (see the module docs).
#[derive(Clone)]
pub struct RedisDirectory {
    client: Client,
}

impl RedisDirectory {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn failed(e: &fred::error::Error) {
        metrics::counter!("bus_redis_errors_total").increment(1);
        tracing::warn!(error = %e, "gateway directory update failed");
    }
}

#[async_trait]
impl Directory for RedisDirectory {
    async fn announce(&self, node: &str, addr: SocketAddr, ttl: Duration) {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let r = self.client.set::<(), _, _>(key(node), addr.to_string(), Some(Expiration::EX(secs)), None, false).await;
        if let Err(e) = r {
            Self::failed(&e);
        }
    }

    async fn lookup(&self, node: &str) -> Option<SocketAddr> {
        match self.client.get::<Option<String>, _>(key(node)).await {
            Ok(v) => v?.parse().ok(),
            Err(e) => {
                Self::failed(&e);
                None
            }
        }
    }

    async fn withdraw(&self, node: &str) {
        if let Err(e) = self.client.del::<(), _>(key(node)).await {
            Self::failed(&e);
        }
    }
}

/// An in-process directory (tests; several gateways in one process).
#[derive(Debug, Default)]
pub struct LocalDirectory {
    nodes: Mutex<HashMap<String, SocketAddr>>,
}

#[async_trait]
impl Directory for LocalDirectory {
    async fn announce(&self, node: &str, addr: SocketAddr, _ttl: Duration) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).insert(node.to_owned(), addr);
    }

    async fn lookup(&self, node: &str) -> Option<SocketAddr> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied()
    }

    async fn withdraw(&self, node: &str) {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
    }
}
