//! One Engine.IO server's state: its protocol, settings, the polling
//! sessions this process holds, and the responses every transport shares.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::time::Instant;

use super::config::Config;
use super::protocol::Protocol;
use super::sid::new_sid;
use crate::cluster::Locator;
use crate::outbox::Outbox;

/// Engine.IO record separator between packets in a polling payload.

#[derive(Debug, Deserialize)]
pub(crate) struct EioQuery {
    #[serde(rename = "EIO")]
    pub(crate) eio: Option<String>,
    pub(crate) transport: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) token: Option<String>,
}

pub(crate) struct PollSession<P: Protocol> {
    pub(crate) outbox: Arc<Outbox>,
    /// The protocol's state. Locked while a POST is handled (packets stay in
    /// order); taken by the websocket upgrade.
    pub(crate) conn: tokio::sync::Mutex<Option<P::Conn>>,
    /// A GET is waiting (at most one at a time).
    pub(crate) polling: AtomicBool,
    /// A POST is being read or handled (at most one at a time).
    pub(crate) posting: AtomicBool,
    /// Moved to websocket: polling requests are refused from now on.
    pub(crate) upgraded: AtomicBool,
    /// A websocket probe succeeded: GETs answer a noop at once until the
    /// upgrade completes (or is abandoned).
    pub(crate) upgrading: AtomicBool,
    /// While a ping is unanswered: when the session times out.
    pub(crate) pong_by: Mutex<Option<Instant>>,
    /// Closed by the client, kept for the poll its close may have overtaken
    /// (see [`super::transport::polling::finish`]).
    pub(crate) lingering: AtomicBool,
}

impl<P: Protocol> PollSession<P> {
    pub(crate) fn pong_by(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.pong_by.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ping went unanswered past its timeout (whether or not the
    /// supervisor has noticed yet).
    pub(crate) fn timed_out(&self) -> bool {
        self.pong_by().is_some_and(|d| Instant::now() >= d)
    }
}

pub(crate) struct Server<P: Protocol> {
    pub(crate) protocol: P,
    pub(crate) config: Config,
    pub(crate) sessions: Mutex<HashMap<String, Arc<PollSession<P>>>>,
    /// With several processes: where the others are (see [`crate::cluster`]).
    pub(crate) locator: Option<Arc<dyn Locator>>,
}

impl<P: Protocol> Server<P> {
    /// A fresh sid, naming this process when it is part of a cluster.
    pub(crate) fn new_sid(&self) -> String {
        match &self.locator {
            Some(l) => format!("{}.{}", l.node(), new_sid()),
            None => new_sid(),
        }
    }

    pub(crate) fn session(&self, sid: &str) -> Option<Arc<PollSession<P>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(sid).cloned()
    }

    pub(crate) fn forget(&self, sid: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(sid);
    }
}

pub(crate) fn bad_request(msg: &'static str) -> Response {
    // The reference server answers protocol errors with a JSON body like this.
    let code = match msg {
        "Transport unknown" => 0,
        "Session ID unknown" => 1,
        "Bad handshake method" => 2,
        _ => 3,
    };
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": code, "message": msg}))).into_response()
}

/// A handshake refused because the application is full (503, so balancers and clients retry elsewhere).
pub(crate) fn at_capacity() -> Response {
    let body = serde_json::json!({"code": 3, "message": "Server at capacity; retry shortly"});
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "2")], axum::Json(body)).into_response()
}

pub(crate) fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

pub(crate) fn open_packet(sid: &str, upgrades: bool, c: &Config) -> String {
    let open = serde_json::json!({
        "sid": sid,
        "upgrades": if upgrades { vec!["websocket"] } else { vec![] },
        "pingInterval": c.ping_interval.as_millis() as u64,
        "pingTimeout": c.ping_timeout.as_millis() as u64,
        "maxPayload": c.max_payload,
    });
    format!("0{open}")
}

/// The token a client presented outside the protocol: `Authorization`
/// header or `?token=`. Copied out so nothing of the request is kept.
pub(crate) fn outer_token(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    if let Some(h) = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok())
        && let Some((scheme, t)) = h.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(t.trim().to_owned());
    }
    query_token.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_shape() {
        let c = Config::default();
        let p = open_packet("abc", true, &c);
        assert!(p.starts_with('0'));
        let v: serde_json::Value = serde_json::from_str(&p[1..]).expect("json");
        assert_eq!(v["sid"], "abc");
        assert_eq!(v["upgrades"], serde_json::json!(["websocket"]));
        assert_eq!(v["pingInterval"], 25000);
    }
}
