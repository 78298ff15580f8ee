//! The stream under a WebSocket: the TCP stream itself when the HTTP
//! server hands it back, else hyper's upgraded connection.

use axum::body::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// What a WebSocket reads and writes: the TCP stream itself under
/// hyper-util's server (which ours and axum's both are), saving the 64-byte
/// box hyper keeps it in and an indirection per read and write; else hyper's
/// upgraded connection, boxed so the common case does not pay for its size.
pub(super) type Io = Either<TcpStream, Box<TokioIo<Upgraded>>>;

/// The connection under `upgraded`, and the bytes the HTTP layer read past
/// the request (a client may send its first frame right behind it).
pub(super) fn unwrap(upgraded: Upgraded) -> (Io, Bytes) {
    match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
        Ok(parts) => (Either::Left(parts.io.into_inner()), parts.read_buf),
        Err(u) => (Either::Right(Box::new(TokioIo::new(u))), Bytes::new()),
    }
}
