//! This gateway as one node of several: its name (in every sid it makes)
//! and where the others are, from the [`Directory`] (Redis), cached briefly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omnibiz_service::nodes::Directory;
use omnibiz_sio::{BoxFuture, Locator};

/// How long a looked-up address is reused.
const CACHE_FOR: Duration = Duration::from_secs(5);

type Cache = Arc<Mutex<HashMap<String, (SocketAddr, Instant)>>>;

/// Where this gateway announces itself, and the directory it uses.
#[derive(Clone)]
pub struct Cluster {
    pub directory: Arc<dyn Directory>,
    /// `host:port` the other gateways can reach this one's HTTP listener at.
    pub advertise: SocketAddr,
}

pub struct NodeLocator {
    node: String,
    directory: Arc<dyn Directory>,
    cache: Cache,
}

impl NodeLocator {
    /// A new node with a fresh random name.
    pub fn new(directory: Arc<dyn Directory>) -> Arc<Self> {
        let node = format!("{:08x}", rand::random::<u32>());
        Arc::new(Self { node, directory, cache: Cache::default() })
    }
}

impl Locator for NodeLocator {
    fn node(&self) -> &str {
        &self.node
    }

    fn locate(&self, node: &str) -> BoxFuture<Option<SocketAddr>> {
        let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied();
        if let Some((addr, at)) = cached
            && at.elapsed() < CACHE_FOR
        {
            return Box::pin(async move { Some(addr) });
        }
        let (directory, cache, node) = (Arc::clone(&self.directory), Arc::clone(&self.cache), node.to_owned());
        Box::pin(async move {
            let addr = directory.lookup(&node).await?;
            cache.lock().unwrap_or_else(|p| p.into_inner()).insert(node, (addr, Instant::now()));
            Some(addr)
        })
    }
}
