//! The connection under a websocket: with hyper-util's server (ours, and
//! axum's) the layer reads and writes the TCP stream itself; with any other
//! server it keeps hyper's upgraded connection. Either way, bytes the HTTP
//! layer read past the upgrade request — a client that sends its first
//! frame right behind the request — are the websocket's first bytes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Accepting;
use omnibiz_sio::{Config, socket_io};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

const UPGRADE: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\n\
connection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A masked client text frame.
fn frame(text: &str) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    assert!(text.len() < 126);
    let mut v = vec![0x81, 0x80 | text.len() as u8];
    v.extend_from_slice(&mask);
    v.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

/// The next server text frame (unmasked, short).
async fn next_text(s: &mut (impl AsyncRead + Unpin)) -> String {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.expect("frame header");
    assert_eq!(h[0], 0x81, "a final text frame");
    let len = match h[1] {
        126 => usize::from(s.read_u16().await.expect("length")),
        n => usize::from(n),
    };
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.expect("frame body");
    String::from_utf8(body).expect("utf-8")
}

/// Upgrade request and Socket.IO CONNECT in one write; the open packet,
/// then the CONNECT's answer, must come back.
async fn pipelined_connect(mut s: impl AsyncRead + AsyncWrite + Unpin) {
    let mut first = UPGRADE.as_bytes().to_vec();
    first.extend(frame("40"));
    s.write_all(&first).await.expect("request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.expect("response head"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let open = tokio::time::timeout(Duration::from_secs(5), next_text(&mut s)).await.expect("open packet");
    assert!(open.starts_with("0{") && open.contains("\"sid\":"), "{open}");
    let connected = tokio::time::timeout(Duration::from_secs(5), next_text(&mut s)).await.expect("CONNECT answered");
    assert!(connected.starts_with("40{\"sid\":"), "{connected}");
}

#[tokio::test]
async fn a_frame_right_behind_the_upgrade_request_is_read_on_tcp() {
    let app = socket_io(Arc::new(Accepting::default()), Config::default(), "/socket.io", None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    pipelined_connect(tokio::net::TcpStream::connect(addr).await.expect("connect")).await;
}

#[tokio::test]
async fn a_frame_right_behind_the_upgrade_request_is_read_on_another_stream() {
    let app = socket_io(Arc::new(Accepting::default()), Config::default(), "/socket.io", None);
    let dir = std::env::temp_dir().join(format!("sio-ws-io-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = tokio::net::UnixListener::bind(&dir).expect("bind");
    tokio::spawn(async move {
        let (io, _) = listener.accept().await.expect("accept");
        let service = hyper_util::service::TowerToHyperService::new(app);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), service)
            .with_upgrades()
            .await;
    });
    pipelined_connect(tokio::net::UnixStream::connect(&dir).await.expect("connect")).await;
    let _ = std::fs::remove_file(&dir);
}
