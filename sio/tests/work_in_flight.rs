//! A connection that ends while the application is still accepting it: the
//! application's work runs to its end, and a socket it accepted is told its
//! disconnect (before, the work was dropped with the connection and the
//! application kept a socket that no longer existed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use omnibiz_sio::{BoxFuture, Config, Connect, DisconnectReason, Event, Handler, Socket, socket_io};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// Accepts every socket, then holds `connected` until the test opens the gate.
struct Gated {
    gate: Semaphore,
    accepted: AtomicUsize,
    disconnected: AtomicUsize,
    timed_out: AtomicUsize,
}

impl Gated {
    fn new() -> Arc<Self> {
        let zero = || AtomicUsize::new(0);
        Arc::new(Self { gate: Semaphore::new(0), accepted: zero(), disconnected: zero(), timed_out: zero() })
    }
}

impl Handler for Gated {
    type State = ();

    fn connect(self: &Arc<Self>, _: Connect) -> BoxFuture<Result<(), Value>> {
        let me = Arc::clone(self);
        Box::pin(async move {
            me.accepted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    fn connected(self: &Arc<Self>, (): &(), _: &Socket) -> Option<BoxFuture<()>> {
        let me = Arc::clone(self);
        Some(Box::pin(async move {
            let _ = me.gate.acquire().await.map(|p| p.forget());
        }))
    }

    fn event(self: &Arc<Self>, (): &(), _: Socket, _: Event) -> BoxFuture<()> {
        Box::pin(async {})
    }

    fn disconnect(self: &Arc<Self>, (): (), _: DisconnectReason) -> Option<BoxFuture<()>> {
        self.disconnected.fetch_add(1, Ordering::SeqCst);
        None
    }

    fn handshake_timed_out(self: &Arc<Self>) {
        self.timed_out.fetch_add(1, Ordering::SeqCst);
    }
}

async fn serve(handler: Arc<Gated>, connect_timeout: Duration) -> std::net::SocketAddr {
    let config = Config { connect_timeout, ..Config::default() };
    let app = socket_io(handler, config, "/socket.io", None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 2 s");
}

#[tokio::test]
async fn a_websocket_whose_handshake_times_out_while_being_accepted_is_disconnected() {
    let handler = Gated::new();
    let addr = serve(Arc::clone(&handler), Duration::from_millis(200)).await;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    let open = ws.next().await.expect("open packet").expect("open packet");
    assert!(open.to_text().expect("text").starts_with("0{"), "{open:?}");
    ws.send(Message::text("40")).await.expect("CONNECT");
    let ack = ws.next().await.expect("CONNECT ack").expect("CONNECT ack");
    assert!(ack.to_text().expect("text").starts_with("40{"), "{ack:?}");

    // `connected` is held past the handshake deadline: the server closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    });
    closed.await.expect("the server closes the connection at the handshake deadline");
    assert_eq!(handler.timed_out.load(Ordering::SeqCst), 1, "the timeout is reported");
    assert_eq!(handler.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(handler.disconnected.load(Ordering::SeqCst), 0, "not before the accepting work ends");

    handler.gate.add_permits(1);
    eventually("the accepted socket's disconnect", || handler.disconnected.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_polling_connect_whose_request_is_abandoned_is_still_accepted_then_disconnected() {
    let handler = Gated::new();
    let addr = serve(Arc::clone(&handler), Duration::from_millis(300)).await;
    let base = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
    let open = common::raw_http(addr, "GET", &base.replace(&format!("http://{addr}"), ""), "").await;
    let sid = open.split("\"sid\":\"").nth(1).and_then(|s| s.split('"').next()).expect("sid").to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");

    // The CONNECT's POST is sent, and the client gives up on it while
    // `connected` is held.
    let mut post = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 2\r\n\r\n40");
    post.write_all(req.as_bytes()).await.expect("POST");
    eventually("the CONNECT accepted", || handler.accepted.load(Ordering::SeqCst) == 1).await;
    drop(post);
    tokio::time::sleep(Duration::from_millis(100)).await;

    handler.gate.add_permits(1);
    // The CONNECT completed: the session is connected, and ends with its heartbeat
    // or a close; closing it tells the application.
    let reply = common::raw_http(addr, "POST", &path, "1").await;
    assert!(reply.ends_with("ok"), "{reply}");
    eventually("the accepted socket's disconnect", || handler.disconnected.load(Ordering::SeqCst) == 1).await;
    assert_eq!(handler.timed_out.load(Ordering::SeqCst), 0, "a completed CONNECT is not a timeout");
}
