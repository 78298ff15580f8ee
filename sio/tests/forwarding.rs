//! Forwarding between processes of a cluster: a request for a session
//! another process holds travels there on a pooled keep-alive connection.
//! Sequential forwarded requests reuse connections (before the pool, each
//! opened its own), and a forwarded long-poll GET that waits never holds up
//! the forwarded requests behind it.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Accepting, http, sid_of};
use omnibiz_sio::{BoxFuture, Config, Locator, socket_io};
use tokio::net::{TcpListener, TcpStream};

struct Static {
    node: String,
    peers: HashMap<String, SocketAddr>,
}

impl Locator for Static {
    fn node(&self) -> &str {
        &self.node
    }

    fn locate(&self, node: &str) -> BoxFuture<Option<SocketAddr>> {
        let at = self.peers.get(node).copied();
        Box::pin(async move { at })
    }
}

/// A listener that counts the connections it accepts.
struct Counted {
    inner: TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Counted {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let got = axum::serve::Listener::accept(&mut self.inner).await;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        got
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_share_connections_and_a_waiting_poll_blocks_none() {
    let (la, lb) =
        (TcpListener::bind("127.0.0.1:0").await.expect("a"), TcpListener::bind("127.0.0.1:0").await.expect("b"));
    let (a, b) = (la.local_addr().expect("a"), lb.local_addr().expect("b"));
    let peers: HashMap<String, SocketAddr> = [("a".to_owned(), a), ("b".to_owned(), b)].into();
    let locator = |node: &str| -> Arc<dyn Locator> { Arc::new(Static { node: node.into(), peers: peers.clone() }) };
    let app_a = socket_io(Arc::new(Accepting::default()), Config::default(), "/socket.io", Some(locator("a")));
    let app_b = socket_io(Arc::new(Accepting::default()), Config::default(), "/socket.io", Some(locator("b")));
    let accepted_by_b = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move { axum::serve(la, app_a).await });
    let counted = Counted { inner: lb, accepted: Arc::clone(&accepted_by_b) };
    tokio::spawn(async move { axum::serve(counted, app_b).await });

    // A session B holds, then every request for it sent to A.
    let (_, open) = http(b, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = sid_of(&open);
    assert!(sid.starts_with("b."), "{sid}");
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http(a, "POST", &path, "40").await, (200, "ok".into()));
    assert!(http(a, "GET", &path, "").await.1.starts_with("40"), "the CONNECT's answer, through A");

    // A forwarded long-poll waits on B (nothing to send)...
    let poll_path = path.clone();
    let waiting = tokio::spawn(async move { http(a, "GET", &poll_path, "").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = accepted_by_b.load(Ordering::SeqCst);
    // ...while 50 forwarded POSTs go through A one after another, each answered at once.
    for i in 0..50 {
        let r = tokio::time::timeout(Duration::from_secs(2), http(a, "POST", &path, "6")).await;
        assert_eq!(r.unwrap_or_else(|_| panic!("POST {i} waited behind the poll")), (200, "ok".into()));
    }
    let opened = accepted_by_b.load(Ordering::SeqCst) - before;
    assert!(opened <= 2, "50 forwarded POSTs opened {opened} connections to B (one each without the pool)");
    // The client closes: the waiting poll gets its noop.
    assert_eq!(http(a, "POST", &path, "1").await, (200, "ok".into()));
    let polled = tokio::time::timeout(Duration::from_secs(2), waiting).await.expect("the poll answered").expect("task");
    assert_eq!(polled, (200, "6".into()));
}
