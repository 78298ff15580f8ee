//! The stream under a WebSocket: the TCP stream itself when the HTTP
//! server hands it back, else hyper's upgraded connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a WebSocket reads and writes: the TCP stream itself when the HTTP
/// server hands it back (hyper-util's server, which ours and axum's both
/// are), else hyper's upgraded connection. The stream itself saves the
/// 64-byte box hyper keeps it in and an indirection per read and write.
pub(super) enum Io {
    Tcp(TcpStream),
    /// Any other server, or HTTP/2's extended CONNECT: boxed, so the common
    /// case does not pay for its size.
    Upgraded(Box<TokioIo<Upgraded>>),
}

impl Io {
    /// The connection under `upgraded`, and the bytes the HTTP layer read
    /// past the request (a client may send its first frame right behind it).
    pub(super) fn unwrap(upgraded: Upgraded) -> (Self, Bytes) {
        let upgraded = match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded) {
            Ok(parts) => return (Self::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(u) => u,
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (Self::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(u) => (Self::Upgraded(Box::new(TokioIo::new(u))), Bytes::new()),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Upgraded(u) => Pin::new(&mut **u).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Upgraded(u) => Pin::new(&mut **u).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Upgraded(u) => Pin::new(&mut **u).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Upgraded(u) => u.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Upgraded(u) => Pin::new(&mut **u).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Upgraded(u) => Pin::new(&mut **u).poll_shutdown(cx),
        }
    }
}
