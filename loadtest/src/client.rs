//! A lean Socket.IO v5 client over the Engine.IO v4 websocket transport:
//! just enough for load (connect with auth, emit, receive events, answer pings).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = WebSocketStream<TcpStream>;

/// `host:port` of a `ws://` / `http://` URL.
pub fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    Ok(rest.split('/').next().context("empty url")?.to_owned())
}

/// Opens a websocket from `source` (a loopback alias, to spread ephemeral ports)
/// and completes the Socket.IO handshake with `auth = {token}`.
pub async fn connect(url: &str, token: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
    let hp = host_port(url)?;
    let addr: SocketAddr = tokio::net::lookup_host(&hp).await?.next().context("resolving the server")?;
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).context("binding the source address")?;
    }
    socket.set_nodelay(true)?;
    let stream = socket.connect(addr).await.context("tcp connect")?;
    // Small buffers: a load generator holds tens of thousands of these.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{hp}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await.context("websocket upgrade")?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
        other => bail!("no Engine.IO open packet: {other:?}"),
    }
    ws.send(Message::text(format!("40{}", serde_json::json!({ "token": token })))).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with("40") => return Ok(ws),
            Some(Ok(Message::Text(t))) if t.starts_with("44") => bail!("connect_error: {t}"),
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => ws.send(Message::text("3")).await?,
            Some(Ok(_)) => {}
            other => bail!("connection ended during the handshake: {other:?}"),
        }
    }
}

/// `42["event",data]`, or with an ack id.
pub fn event(name: &str, data: &serde_json::Value, ack: Option<u64>) -> Message {
    let body = serde_json::json!([name, data]);
    match ack {
        Some(id) => Message::text(format!("42{id}{body}")),
        None => Message::text(format!("42{body}")),
    }
}

/// What one incoming frame was.
pub enum Incoming<'a> {
    Ping,
    Event(&'a str),
    Ack,
    Other,
    Closed,
}

pub fn classify(msg: &Message) -> Incoming<'_> {
    match msg {
        Message::Text(t) => {
            let t = t.as_str();
            if t == "2" {
                Incoming::Ping
            } else if let Some(rest) = t.strip_prefix("42") {
                Incoming::Event(rest)
            } else if t.starts_with("43") {
                Incoming::Ack
            } else if t.starts_with("41") || t == "1" {
                Incoming::Closed
            } else {
                Incoming::Other
            }
        }
        Message::Close(_) => Incoming::Closed,
        _ => Incoming::Other,
    }
}

/// Waits for the ack of a just-sent event, answering pings.
pub async fn wait_ack(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(m)) => match classify(&m) {
                Incoming::Ping => ws.send(Message::text("3")).await?,
                Incoming::Ack => return Ok(m.to_text().unwrap_or_default().to_owned()),
                Incoming::Closed => bail!("closed while waiting for an ack"),
                _ => {}
            },
            _ => bail!("closed while waiting for an ack"),
        }
    }
}
