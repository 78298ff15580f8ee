//! The HTTP server: the router on hyper, as `axum::serve` runs it, plus what
//! `axum::serve` cannot be told — a deadline for a request's headers.
//! Without one, a client that sends a header byte every few seconds holds
//! its connection (and its task and buffers) for ever; with thousands of
//! them a process runs out of sockets before it has seen one request.
//!
//! Accepted connections write without Nagle's delay (`TCP_NODELAY`; see
//! `configure` below for why and what it measured).
//!
//! Each connection's requests carry its peer address as
//! [`ConnectInfo`] (for the per-IP limits). Shutdown stops
//! accepting, asks every connection to finish its requests in flight, and
//! returns once they have (upgraded websockets are not connections of this
//! server any more: the gateway's drain moves them).

use std::convert::Infallible;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish. Connections whose request headers take longer
/// than `header_timeout` are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (close_tx, close_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (io, peer) = match accepted {
            Ok(c) => c,
            // The peer gave up before we accepted: nothing to do.
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors, or the like: wait for some to free.
                tracing::error!(error = %e, "accepting a connection failed; pausing a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        configure(&io, peer);
        let service = router
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            })
            .map_err(|e: Infallible| match e {});
        let mut closing = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            // CONNECT protocol for websockets over HTTP/2, as axum enables it.
            builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
            let mut conn =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service)));
            let mut asked = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    _ = closing.changed(), if !asked => {
                        asked = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closing);
        });
    }
    drop(listener);
    drop(close_rx);
    let _ = close_tx.send(());
    // Resolves once every connection task has dropped its receiver.
    close_tx.closed().await;
    Ok(())
}

/// Sets up an accepted connection: frames and answers go out when written.
/// With Nagle's algorithm a small write waits for the ACK of the one
/// before, and a client that only reads delays its ACKs (up to 40 ms on
/// Linux): a room of 10 at 1 000 messages/s delivered at p99 9–19 ms
/// (p50 0.3 ms) before this, 0.5–0.7 ms after, at the same CPU per
/// delivery (docs/bench-notes.md). Writes are already batched per wake-up
/// (every queued frame in one vectored write), so this adds no packets
/// there. Node's HTTP server does the same by default (`noDelay: true`).
fn configure(io: &tokio::net::TcpStream, peer: std::net::SocketAddr) {
    if let Err(e) = io.set_nodelay(true) {
        tracing::debug!(error = %e, %peer, "TCP_NODELAY not set");
    }
}

/// Accept errors that concern one connection only, not the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_waiting_for_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (io, peer) = listener.accept().await.expect("accept");
        assert!(!io.nodelay().expect("read TCP_NODELAY"), "the kernel's default is Nagle's algorithm on");
        configure(&io, peer);
        assert!(io.nodelay().expect("read TCP_NODELAY"), "TCP_NODELAY set on an accepted connection");
    }
}
