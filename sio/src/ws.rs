//! The server side of RFC 6455 WebSocket framing, written for memory per idle
//! connection: nothing is buffered while a connection is quiet.
//!
//! - Reads go through a buffer on the *stack* of the poll call; only the
//!   bytes of an incomplete frame are kept (in a `Vec` that is freed as soon
//!   as it empties), so an idle socket holds no read buffer at all.
//! - Writes are vectored: each frame's 2–10 byte header and its shared
//!   payload go to the kernel together, several frames per system call, with
//!   no copy and no write buffer.
//! - Headers and cursors are rebuilt inside each poll rather than kept in
//!   the connection's task, so the task stays a few hundred bytes.
//! - Under hyper-util's server the layer takes the TCP stream back from
//!   the upgraded connection and drives it directly: no box around it, no
//!   indirection per read or write (any other server keeps hyper's
//!   upgraded connection).
//!
//! Scope: what Engine.IO over WebSocket uses — text and binary messages
//! (fragmented or not), ping/pong, close. No extensions are negotiated (so
//! no permessage-deflate), client frames must be masked, and a message
//! larger than the configured maximum closes the connection (1009), as does
//! a protocol violation (1002).
//!
//! Why not tungstenite (which axum's `ws` uses): measured here, its
//! connection state costs ≈3 KB per idle socket even with a 512-byte read
//! buffer and no write buffer; this layer's costs are in BENCHMARKS.md.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::HeaderMap;
use base64::Engine as _;
use hyper::upgrade::Upgraded;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod stream;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Bytes read per system call; lives on the stack of the poll only.
const READ_CHUNK: usize = 4096;
/// Frames handed to one vectored write.
const WRITE_BATCH: usize = 32;

const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Close codes we send.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_BAD_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    NotWebSocket,
    BadVersion,
    NoKey,
}

/// Checks an upgrade request and returns the `Sec-WebSocket-Accept` value.
pub(crate) fn handshake(headers: &HeaderMap) -> Result<String, HandshakeError> {
    let has_token = |name: &str, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err(HandshakeError::NotWebSocket);
    }
    if headers.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
        return Err(HandshakeError::BadVersion);
    }
    let key = headers.get("sec-websocket-key").ok_or(HandshakeError::NoKey)?;
    Ok(accept_key(key.as_bytes()))
}

/// `base64(sha1(key ++ GUID))` (RFC 6455 §4.2.2).
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A complete message from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Close,
}

/// A protocol violation, with the close code to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

fn violation(reason: &'static str) -> Violation {
    Violation { code: CLOSE_PROTOCOL, reason }
}

/// The framing state of one direction (client → server): raw bytes of an
/// incomplete frame and the fragments of an incomplete message.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    raw: Vec<u8>,
    /// An unfinished message: its opcode and what arrived so far (rare:
    /// boxed, so an idle connection holds one pointer for it).
    fragments: Option<Box<(u8, Vec<u8>)>>,
    max_message: usize,
}

impl Decoder {
    pub(crate) fn new(max_message: usize) -> Self {
        Self { raw: Vec::new(), fragments: None, max_message }
    }

    /// Takes bytes off the wire.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub(crate) fn next(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some(frame) = self.frame()? else {
                if self.raw.is_empty() && self.raw.capacity() > 0 {
                    self.raw = Vec::new(); // hold nothing while idle
                }
                return Ok(None);
            };
            let (fin, opcode, payload) = frame;
            match opcode {
                OP_TEXT | OP_BINARY if self.fragments.is_some() => {
                    return Err(violation("a new message inside a fragmented one"));
                }
                OP_TEXT if fin => return text(payload).map(Some),
                OP_BINARY if fin => return Ok(Some(Incoming::Binary(payload))),
                OP_TEXT | OP_BINARY => self.fragments = Some(Box::new((opcode, payload))),
                OP_CONT => {
                    let Some((_, buf)) = self.fragments.as_deref_mut() else {
                        return Err(violation("a continuation with nothing to continue"));
                    };
                    if buf.len() + payload.len() > self.max_message {
                        return Err(Violation { code: CLOSE_TOO_BIG, reason: "message too big" });
                    }
                    buf.extend_from_slice(&payload);
                    if fin {
                        match self.fragments.take().map(|f| *f) {
                            Some((OP_TEXT, whole)) => return text(whole).map(Some),
                            Some((_, whole)) => return Ok(Some(Incoming::Binary(whole))),
                            None => {}
                        }
                    }
                }
                OP_CLOSE => return Ok(Some(Incoming::Close)),
                OP_PING => return Ok(Some(Incoming::Ping(payload))),
                OP_PONG => {}
                _ => return Err(violation("unknown opcode")),
            }
        }
    }

    /// Cuts one whole frame off `raw`: `(fin, opcode, unmasked payload)`.
    fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, Violation> {
        let b = &self.raw;
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        let (masked, len7) = (b[1] & 0x80 != 0, b[1] & 0x7F);
        if rsv != 0 {
            return Err(violation("reserved bits set without an extension"));
        }
        if !masked {
            return Err(violation("client frames must be masked"));
        }
        let control = opcode & 0x8 != 0;
        if control && (!fin || len7 > 125) {
            return Err(violation("fragmented or oversized control frame"));
        }
        let (len, at) = match len7 {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        if len > self.max_message as u64 {
            return Err(Violation { code: CLOSE_TOO_BIG, reason: "message too big" });
        }
        let len = len as usize;
        let start = at + 4;
        if b.len() < start + len {
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        let mut payload = b[start..start + len].to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
        self.raw.drain(..start + len);
        Ok(Some((fin, opcode, payload)))
    }
}

fn text(bytes: Vec<u8>) -> Result<Incoming, Violation> {
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| Violation { code: CLOSE_BAD_DATA, reason: "invalid UTF-8" })
}

/// What the writer needs of an outgoing frame.
pub(crate) trait WireFrame {
    fn opcode(&self) -> u8;
    fn payload(&self) -> &[u8];
}

/// A frame with a given opcode over borrowed bytes.
pub(crate) struct Op<'a>(pub(crate) u8, pub(crate) &'a [u8]);

impl WireFrame for Op<'_> {
    fn opcode(&self) -> u8 {
        self.0
    }
    fn payload(&self) -> &[u8] {
        self.1
    }
}

/// A server frame header (never masked): FIN + opcode, then the length.
fn header(opcode: u8, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A server-side WebSocket on an upgraded HTTP connection.
pub(crate) struct WebSocket {
    io: stream::Io,
    decoder: Decoder,
}

impl WebSocket {
    pub(crate) fn new(upgraded: Upgraded, max_message: usize) -> Self {
        let (io, read) = stream::unwrap(upgraded);
        let mut decoder = Decoder::new(max_message);
        decoder.feed(&read);
        Self { io, decoder }
    }

    /// The next message; `None` when the connection ended or broke the
    /// protocol (a close frame with the reason is sent first). Cancel-safe:
    /// every byte read is kept in the decoder before this returns.
    pub(crate) async fn recv(&mut self) -> Option<Incoming> {
        match poll_fn(|cx| self.poll_recv(cx)).await? {
            Ok(m) => Some(m),
            Err(v) => {
                let _ = self.close(v.code).await;
                None
            }
        }
    }

    /// Polls for the next message: `None` at the end of the stream or on an
    /// I/O error, `Some(Err)` on a protocol violation (the caller closes).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Violation>>> {
        loop {
            match self.decoder.next() {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(None) => {}
                Err(v) => {
                    tracing::debug!(reason = v.reason, "closing a websocket on a protocol violation");
                    return Poll::Ready(Some(Err(v)));
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) | Err(_) => return Poll::Ready(None),
                Ok(_) => {}
            }
        }
    }

    /// Reads what the kernel has into a stack buffer and hands it to the decoder.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        self.decoder.feed(buf.filled());
        Poll::Ready(Ok(n))
    }

    /// Writes frames in order, several per system call.
    pub(crate) async fn send_frames<F: WireFrame>(&mut self, frames: &[F]) -> io::Result<()> {
        let mut cursor = (0usize, 0usize);
        poll_fn(|cx| self.poll_write_frames(cx, frames, &mut cursor)).await?;
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)).await
    }

    pub(crate) async fn send_text(&mut self, frame: &[u8]) -> io::Result<()> {
        self.send_frames(&[Op(OP_TEXT, frame)]).await
    }

    /// Polls frames out from `cursor` (see [`Self::poll_write_frames`]).
    pub(crate) fn poll_write<F: WireFrame>(
        &mut self,
        cx: &mut Context<'_>,
        frames: &[F],
        cursor: &mut (usize, usize),
    ) -> Poll<io::Result<()>> {
        self.poll_write_frames(cx, frames, cursor)
    }

    /// Polls a pong out from `cursor`.
    pub(crate) fn poll_write_pong(
        &mut self,
        cx: &mut Context<'_>,
        payload: &[u8],
        cursor: &mut (usize, usize),
    ) -> Poll<io::Result<()>> {
        self.poll_write_frames(cx, &[Op(OP_PONG, payload)], cursor)
    }

    pub(crate) async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut cursor = (0usize, 0usize);
        poll_fn(|cx| self.poll_write_frames(cx, &[Op(OP_PONG, payload)], &mut cursor)).await
    }

    /// Sends a close frame with `code` and shuts the write side down.
    pub(crate) async fn close(&mut self, code: u16) -> io::Result<()> {
        let body = code.to_be_bytes();
        let mut cursor = (0usize, 0usize);
        poll_fn(|cx| self.poll_write_frames(cx, &[Op(OP_CLOSE, &body[..])], &mut cursor)).await?;
        poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await
    }

    /// Polls a close frame with `code` out from `cursor`, then shuts the
    /// write side down.
    pub(crate) fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        cursor: &mut (usize, usize),
    ) -> Poll<io::Result<()>> {
        let body = code.to_be_bytes();
        ready!(self.poll_write_frames(cx, &[Op(OP_CLOSE, &body[..])], cursor))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// Writes `frames` from `cursor` (frame index, bytes of it already
    /// written, header included) until all are out or the socket is full.
    fn poll_write_frames<F: WireFrame>(
        &mut self,
        cx: &mut Context<'_>,
        frames: &[F],
        cursor: &mut (usize, usize),
    ) -> Poll<io::Result<()>> {
        while cursor.0 < frames.len() {
            let batch = &frames[cursor.0..frames.len().min(cursor.0 + WRITE_BATCH)];
            let mut headers = [[0u8; 10]; WRITE_BATCH];
            let mut lens = [0usize; WRITE_BATCH];
            for (i, f) in batch.iter().enumerate() {
                lens[i] = header(f.opcode(), f.payload().len(), &mut headers[i]);
            }
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH * 2];
            let mut n = 0;
            for (i, f) in batch.iter().enumerate() {
                let (h, p) = (&headers[i][..lens[i]], f.payload());
                // Skip what an earlier partial write already sent of the first frame.
                let skip = if i == 0 { cursor.1 } else { 0 };
                if skip < h.len() {
                    slices[n] = IoSlice::new(&h[skip..]);
                    slices[n + 1] = IoSlice::new(p);
                } else {
                    slices[n] = IoSlice::new(&p[skip - h.len()..]);
                }
                n += if skip < h.len() { 2 } else { 1 };
            }
            let mut written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // Advance the cursor over whole frames, then into a partial one.
            for (i, f) in batch.iter().enumerate() {
                let left = lens[i] + f.payload().len() - if i == 0 { cursor.1 } else { 0 };
                if written >= left {
                    written -= left;
                    cursor.0 += 1;
                    cursor.1 = 0;
                } else {
                    cursor.1 = if i == 0 { cursor.1 + written } else { written };
                    break;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes and reads server-side frames against any byte stream, for tests.
/// A frame as a client sends it, masked with `mask`.
#[cfg(test)]
fn masked_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => v.push(0x80 | n as u8),
        n if n <= 65535 => {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

#[cfg(test)]
fn encode_server(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 10];
    let n = header(opcode, payload.len(), &mut h);
    let mut v = h[..n].to_vec();
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it (masked).
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        masked_frame(fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d])
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn handshake_checks_the_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "WebSocket".parse().expect("value"));
        h.insert("connection", "keep-alive, Upgrade".parse().expect("value"));
        h.insert("sec-websocket-version", "13".parse().expect("value"));
        assert_eq!(handshake(&h), Err(HandshakeError::NoKey));
        h.insert("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("value"));
        assert_eq!(handshake(&h).as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        h.insert("sec-websocket-version", "8".parse().expect("value"));
        assert_eq!(handshake(&h), Err(HandshakeError::BadVersion));
        h.remove("upgrade");
        assert_eq!(handshake(&h), Err(HandshakeError::NotWebSocket));
    }

    #[test]
    fn decodes_whole_split_and_pipelined_frames() {
        let mut d = Decoder::new(1 << 20);
        let a = client_frame(true, OP_TEXT, b"42[\"a\"]");
        let long = "x".repeat(300);
        let b = client_frame(true, OP_TEXT, long.as_bytes());
        let huge = "y".repeat(70_000);
        let c = client_frame(true, OP_TEXT, huge.as_bytes());
        let mut wire = [a, b, c].concat();
        // Byte by byte for the first frame, then the rest at once.
        let rest = wire.split_off(3);
        for byte in &wire {
            assert_eq!(d.next(), Ok(None));
            d.feed(&[*byte]);
        }
        assert_eq!(d.next(), Ok(None), "only 3 bytes so far");
        d.feed(&rest);
        assert_eq!(d.next(), Ok(Some(Incoming::Text("42[\"a\"]".into()))));
        assert_eq!(d.next(), Ok(Some(Incoming::Text(long))));
        assert_eq!(d.next(), Ok(Some(Incoming::Text(huge))));
        assert_eq!(d.next(), Ok(None));
        assert_eq!(d.raw.capacity(), 0, "nothing held once idle");
    }

    #[test]
    fn reassembles_fragments_with_control_frames_between() {
        let mut d = Decoder::new(1024);
        d.feed(&client_frame(false, OP_TEXT, b"hel"));
        d.feed(&client_frame(true, OP_PING, b"p"));
        d.feed(&client_frame(false, OP_CONT, b"lo "));
        d.feed(&client_frame(true, OP_CONT, "wörld".as_bytes()));
        d.feed(&client_frame(true, OP_BINARY, b"\x01\x02"));
        d.feed(&client_frame(false, OP_BINARY, b"\x03"));
        d.feed(&client_frame(true, OP_CONT, b"\x04"));
        d.feed(&client_frame(true, OP_PONG, b""));
        d.feed(&client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
        assert_eq!(d.next(), Ok(Some(Incoming::Ping(b"p".to_vec()))));
        assert_eq!(d.next(), Ok(Some(Incoming::Text("hello wörld".into()))));
        assert_eq!(d.next(), Ok(Some(Incoming::Binary(vec![1, 2]))));
        assert_eq!(d.next(), Ok(Some(Incoming::Binary(vec![3, 4]))), "fragments reassembled");
        assert_eq!(d.next(), Ok(Some(Incoming::Close)), "pong is skipped");
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let unmasked = encode_server(OP_TEXT, b"hi");
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked, CLOSE_PROTOCOL),
            (client_frame(true, OP_CONT, b"x"), CLOSE_PROTOCOL),
            (client_frame(false, OP_PING, b"x"), CLOSE_PROTOCOL),
            (client_frame(true, 0x3, b"x"), CLOSE_PROTOCOL),
            (client_frame(true, OP_TEXT, &[0xff, 0xfe]), CLOSE_BAD_DATA),
            (client_frame(true, OP_TEXT, &[b'a'; 2000]), CLOSE_TOO_BIG),
            (
                [client_frame(false, OP_TEXT, &[b'a'; 600]), client_frame(true, OP_CONT, &[b'a'; 600])].concat(),
                CLOSE_TOO_BIG,
            ),
            ([client_frame(false, OP_TEXT, b"a"), client_frame(true, OP_TEXT, b"b")].concat(), CLOSE_PROTOCOL),
        ];
        for (wire, code) in cases {
            let mut d = Decoder::new(1024);
            d.feed(&wire);
            let mut last = d.next();
            while let Ok(Some(_)) = last {
                last = d.next();
            }
            assert_eq!(last.map_err(|v| v.code), Err(code), "{wire:?}");
        }
        let mut d = Decoder::new(1024);
        let mut rsv = client_frame(true, OP_TEXT, b"x");
        rsv[0] |= 0x40;
        d.feed(&rsv);
        assert_eq!(d.next().map_err(|v| v.code), Err(CLOSE_PROTOCOL));
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        for (len, hlen) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut h = [0u8; 10];
            assert_eq!(header(OP_TEXT, len, &mut h), hlen, "{len}");
            assert_eq!(h[0], 0x81);
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes, cut anywhere: no panic, and while waiting for more the
        /// decoder holds at most one frame's worth (bounded memory).
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(1usize..512, 1..16),
        ) {
            let max = 1024;
            let mut d = Decoder::new(max);
            let mut rest: &[u8] = &bytes;
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap_or(&1)).min(rest.len());
                d.feed(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match d.next() {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            prop_assert!(d.raw.len() <= max + 14, "holds {} bytes", d.raw.len());
                            break;
                        }
                        Err(_) => return Ok(()), // a violation closes the connection
                    }
                }
                prop_assert!(d.fragments.as_deref().is_none_or(|(_, b)| b.len() <= max));
            }
        }

        /// Text messages framed as a client frames them (fragmented or not,
        /// any mask), split at any points, come out whole and in order.
        #[test]
        fn framed_messages_round_trip_across_any_split(
            msgs in proptest::collection::vec(".{0,300}", 1..8),
            mask in any::<[u8; 4]>(),
            fragment_at in 0usize..64,
            cuts in proptest::collection::vec(1usize..200, 1..8),
        ) {
            let mut wire = Vec::new();
            for m in &msgs {
                let b = m.as_bytes();
                let at = fragment_at.min(b.len());
                if at > 0 && at < b.len() {
                    wire.extend(masked_frame(false, OP_TEXT, &b[..at], mask));
                    wire.extend(masked_frame(true, OP_PING, b"p", mask)); // control frames may interleave
                    wire.extend(masked_frame(true, OP_CONT, &b[at..], mask));
                } else {
                    wire.extend(masked_frame(true, OP_TEXT, b, mask));
                }
            }
            let mut d = Decoder::new(1 << 16);
            let mut got = Vec::new();
            let mut rest: &[u8] = &wire;
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap_or(&1)).min(rest.len());
                d.feed(&rest[..n]);
                rest = &rest[n..];
                while let Some(m) = d.next().map_err(|v| TestCaseError::fail(v.reason))? {
                    if let Incoming::Text(t) = m {
                        got.push(t);
                    }
                }
            }
            prop_assert_eq!(got, msgs);
        }
    }
}
