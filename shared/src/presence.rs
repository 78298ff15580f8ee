//! Who is online. The gateway counts connections per principal; the API asks
//! when it fills `isOnline`. In-process here; the Redis-backed implementation
//! (counts with a TTL refreshed by each gateway's heartbeat) lives with the gateway.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// Read side of presence, keyed by personal room (`user:<id>` / `customer:<id>`).
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// For each room, whether at least one connection of it is open.
    async fn online(&self, rooms: &[String]) -> Vec<bool>;
}

/// In-process connection counts (single-node mode).
#[derive(Debug, Default)]
pub struct LocalPresence {
    // std Mutex: held only for a map operation, never across an await.
    counts: Mutex<HashMap<String, u32>>,
}

impl LocalPresence {
    /// Records a connection; true when the principal just came online.
    pub fn connect(&self, room: &str) -> bool {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(room.to_owned()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Records a disconnection; true when the principal just went offline.
    pub fn disconnect(&self, room: &str) -> bool {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(room) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                m.remove(room);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn online(&self, rooms: &[String]) -> Vec<bool> {
        let m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        rooms.iter().map(|r| m.contains_key(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_connections_per_room() {
        let p = LocalPresence::default();
        assert!(p.connect("user:a"));
        assert!(!p.connect("user:a"));
        assert_eq!(p.online(&["user:a".into(), "user:b".into()]).await, vec![true, false]);
        assert!(!p.disconnect("user:a"));
        assert!(p.disconnect("user:a"));
        assert_eq!(p.online(&["user:a".into()]).await, vec![false]);
        assert!(!p.disconnect("user:a"));
    }
}
