//! A client's CLOSE that overtakes a poll it sent before it. Browsers poll
//! again the moment a poll answers and then run the application's handler,
//! which may close: the GET and the POST carrying CLOSE leave together on
//! separate connections, and the server can handle the POST first. That GET
//! is legitimate and gets the noop a waiting GET gets — before, it got 400
//! "Session ID unknown", which the browser logs as an error. Requests after
//! that one still get 400, as the Engine.IO compliance suite requires.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Accepting as Counting, http, sid_of};
use omnibiz_sio::{Config, socket_io};

/// A server on a free port, with a handler that counts disconnects.
async fn serve() -> (Arc<Counting>, std::net::SocketAddr) {
    let handler = Arc::new(Counting::default());
    let app = socket_io(Arc::clone(&handler), Config::default(), "/socket.io", None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (handler, addr)
}

#[tokio::test]
async fn a_poll_overtaken_by_the_clients_close_gets_its_noop_once() {
    let (handler, addr) = serve().await;

    let (_, open) = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = sid_of(&open);
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(addr, "POST", &path, "40").await, (200, "ok".into()));
    assert!(http(addr, "GET", &path, "").await.1.starts_with("40"), "the CONNECT's answer");

    // The close is handled first; the application hears the disconnect at once.
    assert_eq!(http(addr, "POST", &path, "1").await, (200, "ok".into()));
    assert_eq!(handler.disconnected.load(Ordering::SeqCst), 1);
    // The poll the client sent before its close.
    assert_eq!(http(addr, "GET", &path, "").await, (200, "6".into()));
    // Anything after that finds no session.
    assert_eq!(http(addr, "GET", &path, "").await.0, 400);
    assert_eq!(http(addr, "POST", &path, "40").await.0, 400);
    assert_eq!(handler.disconnected.load(Ordering::SeqCst), 1, "one disconnect");
}

#[tokio::test]
async fn a_post_after_the_clients_close_is_refused() {
    let (_, addr) = serve().await;
    let (_, open) = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = sid_of(&open);
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(addr, "POST", &path, "1").await, (200, "ok".into()));
    let (status, body) = http(addr, "POST", &path, "40").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Session ID unknown"), "{body}");
}
