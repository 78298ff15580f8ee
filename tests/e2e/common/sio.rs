//! A minimal Socket.IO v5 / Engine.IO v4 client over WebSocket, for tests:
//! connect with auth, emit (with or without ack), wait for events.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct SioClient {
    out: mpsc::UnboundedSender<String>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    pending: VecDeque<(String, Value)>,
    acks: Acks,
    next_ack: u64,
    /// Set when the server closed the connection.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

const WAIT: Duration = Duration::from_secs(10);

impl SioClient {
    /// Connects to `base` (`http://host:port`) with `auth = {token}`. `Err` carries the `connect_error` message.
    pub async fn connect(base: &str, token: Option<&str>) -> Result<Self, String> {
        let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
        let auth = token.map(|t| serde_json::json!({ "token": t }).to_string()).unwrap_or_default();
        Self::open(&url, &auth).await
    }

    /// Connects with the token in the query string and no auth payload.
    pub async fn connect_with_query_token(base: &str, token: &str) -> Result<Self, String> {
        let url = format!("{}/socket.io/?EIO=4&transport=websocket&token={token}", base.replacen("http", "ws", 1));
        Self::open(&url, "").await
    }

    async fn open(url: &str, auth: &str) -> Result<Self, String> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| format!("websocket: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let open = match stream.next().await {
            Some(Ok(Message::Text(t))) => t.to_string(),
            other => return Err(format!("no Engine.IO open packet: {other:?}")),
        };
        if !open.starts_with('0') {
            return Err(format!("unexpected first packet {open}"));
        }
        sink.send(Message::text(format!("40{auth}"))).await.map_err(|e| e.to_string())?;
        // Wait for CONNECT or CONNECT_ERROR, answering pings meanwhile.
        loop {
            match tokio::time::timeout(WAIT, stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let t = t.to_string();
                    if t == "2" {
                        sink.send(Message::text("3")).await.map_err(|e| e.to_string())?;
                    } else if let Some(rest) = t.strip_prefix("44") {
                        let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
                        return Err(v["message"].as_str().unwrap_or(rest).to_owned());
                    } else if t.starts_with("40") {
                        break;
                    }
                }
                other => return Err(format!("connection ended before CONNECT: {other:?}")),
            }
        }
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (acks2, closed2, pong) = (Arc::clone(&acks), Arc::clone(&closed), out_tx.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let t = t.to_string();
                if t == "2" {
                    let _ = pong.send("3".into());
                } else if let Some(rest) = t.strip_prefix("42") {
                    if let Ok(Value::Array(mut a)) = serde_json::from_str::<Value>(rest)
                        && let Some(Value::String(name)) = a.first().cloned()
                    {
                        let data = if a.len() > 1 { a.remove(1) } else { Value::Null };
                        let _ = ev_tx.send((name, data));
                    }
                } else if let Some(rest) = t.strip_prefix("43") {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let id: u64 = digits.parse().unwrap_or(0);
                    let data: Value = serde_json::from_str(&rest[digits.len()..]).unwrap_or(Value::Null);
                    let first = data.as_array().and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
                    if let Some(tx) = acks2.lock().expect("acks").remove(&id) {
                        let _ = tx.send(first);
                    }
                } else if t.starts_with("41") || t.starts_with('1') {
                    break;
                }
            }
            closed2.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Ok(Self { out: out_tx, events: ev_rx, pending: VecDeque::new(), acks, next_ack: 0, closed })
    }

    pub fn emit(&self, event: &str, data: Value) {
        let _ = self.out.send(format!("42{}", serde_json::json!([event, data])));
    }

    /// Sends a raw Socket.IO packet text (to test malformed input).
    pub fn raw(&self, packet: &str) {
        let _ = self.out.send(packet.to_owned());
    }

    /// Emits and waits for the ack's first argument.
    pub async fn call(&mut self, event: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("acks").insert(id, tx);
        let _ = self.out.send(format!("42{id}{}", serde_json::json!([event, data])));
        tokio::time::timeout(WAIT, rx).await.unwrap_or_else(|_| panic!("no ack for {event}")).expect("ack")
    }

    /// Waits for the next `event`, keeping others for later.
    pub async fn expect(&mut self, event: &str) -> Value {
        self.try_expect(event, WAIT).await.unwrap_or_else(|| panic!("no `{event}` within {WAIT:?}"))
    }

    pub async fn try_expect(&mut self, event: &str, wait: Duration) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(|(n, _)| n == event) {
            return self.pending.remove(i).map(|(_, v)| v);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((n, v))) if n == event => return Some(v),
                Ok(Some(other)) => self.pending.push_back(other),
                _ => return None,
            }
        }
    }

    /// Every `event` that arrives within `wait`.
    pub async fn collect(&mut self, event: &str, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Some(v) =
            self.try_expect(event, deadline.saturating_duration_since(tokio::time::Instant::now())).await
        {
            out.push(v);
        }
        out
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn disconnect(self) {
        let _ = self.out.send("41".into());
    }
}
