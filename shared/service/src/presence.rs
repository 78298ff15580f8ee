//! Who is online, across every gateway.
//!
//! Each gateway counts its own connections per principal (personal room
//! `user:<id>` / `customer:<id>`) and tells the [`Presence`] backend when it
//! starts or stops holding one. The API reads it for `isOnline`.
//!
//! Redis layout ([`RedisPresence`]): one hash per principal,
//! `omnibiz:presence:{<room>}`, field = gateway id, value = the Unix time in
//! milliseconds until which that gateway vouches for the principal. Each
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
    /// This process now holds connections of `room` (`true`) or none (`false`).
    async fn set_local(&self, room: &str, present: bool);
    /// Heartbeat: re-asserts every room this process holds.
    async fn refresh(&self, rooms: &[String]);
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

    async fn set_local(&self, room: &str, present: bool) {
        let mut set = self.online.lock().unwrap_or_else(|p| p.into_inner());
        if present {
            set.insert(room.to_owned());
        } else {
            set.remove(room);
        }
    }

    async fn refresh(&self, _rooms: &[String]) {}
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

    async fn vouch(&self, rooms: &[String]) {
        if rooms.is_empty() {
            return;
        }
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let until = now_ms() + ttl_ms;
        let pipe = self.client.pipeline();
        for room in rooms {
            let k = key(room);
            let _: Result<(), _> = pipe.hset(&k, (self.gateway.as_str(), until)).await;
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
            Ok(maps) => maps.iter().map(|m| m.values().any(|&until| until > now)).collect(),
            Err(e) => {
                Self::failed(&e);
                vec![false; rooms.len()]
            }
        }
    }

    async fn set_local(&self, room: &str, present: bool) {
        if present {
            self.vouch(&[room.to_owned()]).await;
        } else if let Err(e) = self.client.hdel::<(), _, _>(key(room), self.gateway.as_str()).await {
            Self::failed(&e);
        }
    }

    async fn refresh(&self, rooms: &[String]) {
        for chunk in rooms.chunks(500) {
            self.vouch(chunk).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_presence_tracks_rooms() {
        let p = LocalPresence::default();
        p.set_local("user:a", true).await;
        assert_eq!(p.online(&["user:a".into(), "user:b".into()]).await, vec![true, false]);
        p.set_local("user:a", false).await;
        assert_eq!(p.online(&["user:a".into()]).await, vec![false]);
    }
}
