//! What the sio integration tests share: a raw HTTP/1.1 request on its own
//! connection, and a handler that accepts every socket.

#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use omnibiz_sio::{BoxFuture, Connect, DisconnectReason, Event, Handler, Socket};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.1 request on its own connection; the whole response as text.
pub(crate) async fn raw_http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

/// [`raw_http`], split into the status code and the body.
pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = raw_http(addr, method, path, body).await;
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// The sid of an Engine.IO open packet.
pub(crate) fn sid_of(open: &str) -> String {
    open.split("\"sid\":\"").nth(1).and_then(|s| s.split('"').next()).expect("sid").to_owned()
}

/// Accepts every socket and counts disconnects.
#[derive(Default)]
pub(crate) struct Accepting {
    pub(crate) disconnected: AtomicUsize,
}

impl Handler for Accepting {
    type State = ();

    fn connect(self: &Arc<Self>, _: Connect) -> BoxFuture<Result<(), Value>> {
        Box::pin(async { Ok(()) })
    }

    fn event(self: &Arc<Self>, (): &(), _: Socket, _: Event) -> BoxFuture<()> {
        Box::pin(async {})
    }

    fn disconnect(self: &Arc<Self>, (): (), _: DisconnectReason) -> Option<BoxFuture<()>> {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
        None
    }
}
