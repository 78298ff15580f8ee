//! Who is online, across every gateway.
//!
//! Each gateway counts its own connections per principal (personal room
//! `user:<id>` / `customer:<id>`) and tells the [`Presence`] backend when it
//! starts or stops holding one. The API reads it for `isOnline`.
//!
//! It also counts them, so the cap on sockets per principal holds across
//! gateways ([`Presence::elsewhere`]).
//!
//! Redis layout ([`RedisPresence`]): one hash per principal,
//! `omnibiz:presence:{<room>}`, field = gateway id, value = the Unix time in
//! milliseconds until which that gateway vouches for the principal, and
//! field `<gateway id>#n` = how many sockets of it that gateway holds. Each
//! gateway refreshes its fields on a heartbeat; a principal is online while
//! any field is in the future. A gateway that dies without cleaning up simply
//! stops refreshing, so its users go offline by themselves within the TTL.
//! (Hash fields cannot expire individually before Redis 7.4, hence the
//! timestamps; the whole key also expires when nobody refreshes it.)

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{HashesInterface as _, KeysInterface as _};

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// For each room, whether at least one connection of it is open anywhere.
    async fn online(&self, rooms: &[String]) -> Vec<bool>;
    /// This process now holds `count` connections of `room` (0: none).
    async fn set_local(&self, room: &str, count: usize);
    /// Heartbeat: re-asserts every room this process holds, with its count.
    async fn refresh(&self, rooms: &[(String, usize)]);
    /// Connections of `room` held by *other* live processes.
    async fn elsewhere(&self, room: &str) -> usize;
}

/// Single-process presence (the `serve` default).
#[derive(Debug, Default)]
pub struct LocalPresence {
    // std Mutex: held only for a set operation, never across an await.
    online: Mutex<HashSet<String>>,
}

#[async_trait]
impl Presence for LocalPresence {
    async fn online(&self, rooms: &[String]) -> Vec<bool> {
        let set = self.online.lock().unwrap_or_else(|p| p.into_inner());
        rooms.iter().map(|r| set.contains(r)).collect()
    }

    async fn set_local(&self, room: &str, count: usize) {
        let mut set = self.online.lock().unwrap_or_else(|p| p.into_inner());
        if count > 0 {
            set.insert(room.to_owned());
        } else {
            set.remove(room);
        }
    }

    async fn refresh(&self, _rooms: &[(String, usize)]) {}

    async fn elsewhere(&self, _room: &str) -> usize {
        0
    }
}

/// Presence shared through Redis (see the module docs).
#[derive(Clone)]
pub struct RedisPresence {
    client: Client,
    gateway: String,
    ttl: Duration,
}

fn key(room: &str) -> String {
    format!("omnibiz:presence:{{{room}}}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl RedisPresence {
    /// `gateway` identifies this process; `ttl` is how long a heartbeat vouches.
    pub fn new(client: Client, gateway: &str, ttl: Duration) -> Self {
        Self { client, gateway: gateway.to_owned(), ttl }
    }

    fn failed(e: &fred::error::Error) {
        metrics::counter!("bus_redis_errors_total").increment(1);
        tracing::warn!(error = %e, "presence update failed");
    }

    fn count_field(&self) -> String {
        format!("{}#n", self.gateway)
    }

    async fn vouch(&self, rooms: &[(String, usize)]) {
        if rooms.is_empty() {
            return;
        }
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let until = now_ms() + ttl_ms;
        let count_field = self.count_field();
        let pipe = self.client.pipeline();
        for (room, count) in rooms {
            let k = key(room);
            let count = i64::try_from(*count).unwrap_or(i64::MAX);
            let fields = vec![(self.gateway.clone(), until), (count_field.clone(), count)];
            let _: Result<(), _> = pipe.hset(&k, fields).await;
            let _: Result<(), _> = pipe.pexpire(&k, ttl_ms * 2, None).await;
        }
        if let Err(e) = pipe.all::<()>().await {
            Self::failed(&e);
        }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn online(&self, rooms: &[String]) -> Vec<bool> {
        if rooms.is_empty() {
            return Vec::new();
        }
        let pipe = self.client.pipeline();
        for room in rooms {
            let _: Result<(), _> = pipe.hgetall(key(room)).await;
        }
        let now = now_ms();
        match pipe.all::<Vec<HashMap<String, i64>>>().await {
            Ok(maps) => maps.iter().map(|m| m.iter().any(|(g, &until)| !g.ends_with("#n") && until > now)).collect(),
            Err(e) => {
                Self::failed(&e);
                vec![false; rooms.len()]
            }
        }
    }

    async fn set_local(&self, room: &str, count: usize) {
        if count > 0 {
            self.vouch(&[(room.to_owned(), count)]).await;
        } else if let Err(e) =
            self.client.hdel::<(), _, _>(key(room), vec![self.gateway.clone(), self.count_field()]).await
        {
            Self::failed(&e);
        }
    }

    async fn refresh(&self, rooms: &[(String, usize)]) {
        for chunk in rooms.chunks(500) {
            self.vouch(chunk).await;
        }
    }

    async fn elsewhere(&self, room: &str) -> usize {
        match self.client.hgetall::<HashMap<String, i64>, _>(key(room)).await {
            Ok(m) => count_elsewhere(&m, &self.gateway, now_ms()),
            Err(e) => {
                // Unknown: the per-gateway part of the cap still holds.
                Self::failed(&e);
                0
            }
        }
    }
}

/// Sockets held by live gateways other than `me` in one presence hash. A
/// gateway that vouches without a count (an older version) counts as one.
fn count_elsewhere(hash: &HashMap<String, i64>, me: &str, now: i64) -> usize {
    hash.iter()
        .filter(|(g, until)| !g.ends_with("#n") && g.as_str() != me && **until > now)
        .map(|(g, _)| hash.get(&format!("{g}#n")).map_or(1, |n| usize::try_from(*n).unwrap_or(0)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_presence_tracks_rooms() {
        let p = LocalPresence::default();
        p.set_local("user:a", 2).await;
        assert_eq!(p.online(&["user:a".into(), "user:b".into()]).await, vec![true, false]);
        p.set_local("user:a", 0).await;
        assert_eq!(p.online(&["user:a".into()]).await, vec![false]);
    }

    #[test]
    fn counts_elsewhere_skip_this_gateway_and_dead_ones() {
        let hash: HashMap<String, i64> = [
            ("me", 2000),
            ("me#n", 7),
            ("live", 2000),
            ("live#n", 3),
            ("dead", 500),
            ("dead#n", 9),
            ("old-version", 2000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(count_elsewhere(&hash, "me", 1000), 3 + 1);
    }
}
