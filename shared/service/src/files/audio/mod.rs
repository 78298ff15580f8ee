//! Voice messages: an uploaded audio file is decoded once, on the server,
//! for its duration and a waveform to draw.
//!
//! Accepted: what browsers record — Opus in WebM (Chromium's
//! `MediaRecorder`), Opus in Ogg (Firefox), AAC or Opus in MP4 (Safari,
//! newer Chromium) — and MP3 files.
//!
//! A file from a client is hostile until decoded. The containers are read
//! by demuxers of our own over the bytes in memory ([`webm`], [`ogg`],
//! [`mp4`]): every length they meet is checked against the bytes that
//! are really there, so no declared size or count ever becomes an
//! allocation (the general-purpose demuxers we tried allocate what a
//! header declares, which a 100-byte file can make terabytes). Codecs are
//! well-kept pure-Rust crates: Opus by `opus-decoder` (RFC 8251
//! conformant), AAC and MP3 by Symphonia — each fed one packet at a time.
//! A decode is bounded in time ([`Limits::deadline`]) and in length
//! ([`Limits::max_duration`]); a file that breaks either is refused, and a
//! file with no decodable audio is refused.

mod container;
mod decode;
mod levels;
mod model;
mod mp3;
mod mp4;
mod ogg;
mod webm;

pub use container::Container;
pub use decode::summarize;
pub use model::{AudioError, Limits};

#[cfg(test)]
mod tests;
