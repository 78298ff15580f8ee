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

mod decode;
mod mp3;
mod mp4;
mod ogg;
mod webm;

use std::time::{Duration, Instant};

use omnibiz_domain::AudioInfo;

pub use decode::summarize;

/// The containers accepted, as recognised from a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    WebM,
    Ogg,
    Mp4,
    Mp3,
}

impl Container {
    /// Recognises an audio container from the first bytes of a file. MP4
    /// and WebM may hold video too: that is found when the file is read.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(b"OggS") {
            return Some(Self::Ogg);
        }
        if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            return webm::is_webm(head).then_some(Self::WebM);
        }
        if head.len() >= 12 && &head[4..8] == b"ftyp" {
            return Some(Self::Mp4);
        }
        if head.starts_with(b"ID3") || mp3::frame_sync(head) {
            return Some(Self::Mp3);
        }
        None
    }

    /// The media type a file of this container is stored under.
    pub fn mime(self) -> &'static str {
        match self {
            Self::WebM => "audio/webm",
            Self::Ogg => "audio/ogg",
            Self::Mp4 => "audio/mp4",
            Self::Mp3 => "audio/mpeg",
        }
    }

    /// The container of a stored media type, for audio types.
    pub fn of_mime(mime: &str) -> Option<Self> {
        [Self::WebM, Self::Ogg, Self::Mp4, Self::Mp3].into_iter().find(|c| c.mime() == mime)
    }
}

/// Why an audio file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AudioError {
    /// Not a file we can read (a malformed container or codec data).
    #[error("{0}")]
    Invalid(String),
    /// Well formed, but not what voice messages accept (video, another codec).
    #[error("{0}")]
    Unsupported(String),
    #[error("the recording is longer than the limit of {} seconds", .0.as_secs())]
    TooLong(Duration),
    #[error("the recording took longer than {} seconds to read", .0.as_secs())]
    TooSlow(Duration),
}

pub(crate) fn invalid(what: impl Into<String>) -> AudioError {
    AudioError::Invalid(what.into())
}

/// Bounds of one decode.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest recording accepted.
    pub max_duration: Duration,
    /// Longest a decode may run (wall clock on its blocking thread).
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_duration: Duration::from_secs(15 * 60), deadline: Duration::from_secs(20) }
    }
}

/// A codec's configuration, as a container declares it.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    /// Opus, with the samples its encoder asks to drop (48 kHz).
    Opus { pre_skip: u16 },
    /// AAC: the AudioSpecificConfig from the container.
    Aac { config: Vec<u8> },
}

/// The codec of an Opus identification header (`OpusHead`, RFC 7845 §5.1).
pub(crate) fn opus_head(data: &[u8]) -> Result<Codec, AudioError> {
    if data.len() < 19 || !data.starts_with(b"OpusHead") {
        return Err(invalid("the Opus stream has no valid OpusHead"));
    }
    if data[8] >> 4 != 0 {
        return Err(AudioError::Unsupported(format!("Opus header version {} is not supported", data[8])));
    }
    opus_config(data[9], u16::from_le_bytes([data[10], data[11]]), data[18])
}

/// Opus with `channels`, `pre_skip` and channel mapping `family`: one or
/// two channels (family 0 or 1), as voice recordings are.
pub(crate) fn opus_config(channels: u8, pre_skip: u16, family: u8) -> Result<Codec, AudioError> {
    if channels == 0 {
        return Err(invalid("the Opus stream declares no channels"));
    }
    if channels > 2 || family > 1 {
        return Err(AudioError::Unsupported(
            "multichannel Opus is not accepted (voice messages have one or two channels)".into(),
        ));
    }
    Ok(Codec::Opus { pre_skip })
}

/// Where a demuxer delivers what it reads.
pub(crate) trait Sink {
    /// The audio track's codec, before its first packet.
    fn codec(&mut self, codec: Codec) -> Result<(), AudioError>;
    /// One compressed packet of the audio track, in order.
    fn packet(&mut self, data: &[u8]) -> Result<(), AudioError>;
}

/// Levels gathered while decoding: the peak of every 10 ms block, and how
/// many samples there were.
pub(crate) struct Levels {
    limits: Limits,
    started: Instant,
    rate: u32,
    block_len: u64,
    in_block: u64,
    block_peak: f32,
    samples: u64,
    blocks: Vec<f32>,
}

impl Levels {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            started: Instant::now(),
            rate: 0,
            block_len: 0,
            in_block: 0,
            block_peak: 0.0,
            samples: 0,
            blocks: Vec::new(),
        }
    }

    /// Sets the sample rate of what follows (once, before any samples).
    fn rate(&mut self, rate: u32) -> Result<(), AudioError> {
        if rate == 0 {
            return Err(invalid("the audio declares a sample rate of 0"));
        }
        if self.rate != 0 && self.rate != rate {
            return Err(AudioError::Unsupported("the sample rate changes within the recording".into()));
        }
        self.rate = rate;
        self.block_len = u64::from(rate / 100).max(1);
        Ok(())
    }

    /// Takes decoded mono samples (any scale; only magnitudes matter).
    fn push(&mut self, samples: impl Iterator<Item = f32>) -> Result<(), AudioError> {
        for s in samples {
            let a = s.abs();
            if a > self.block_peak && a.is_finite() {
                self.block_peak = a;
            }
            self.in_block += 1;
            if self.in_block == self.block_len {
                self.blocks.push(self.block_peak);
                self.in_block = 0;
                self.block_peak = 0.0;
            }
        }
        self.check()
    }

    /// Counts samples that are not heard (an encoder's pre-skip).
    fn skip(&mut self, n: u64) {
        self.samples = self.samples.saturating_sub(n);
    }

    fn add_samples(&mut self, n: u64) {
        self.samples += n;
    }

    fn check(&self) -> Result<(), AudioError> {
        if self.rate != 0
            && u128::from(self.samples) * 1000 / u128::from(self.rate) > self.limits.max_duration.as_millis()
        {
            return Err(AudioError::TooLong(self.limits.max_duration));
        }
        if self.started.elapsed() > self.limits.deadline {
            return Err(AudioError::TooSlow(self.limits.deadline));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<AudioInfo, AudioError> {
        if self.in_block > 0 {
            self.blocks.push(self.block_peak);
        }
        if self.samples == 0 || self.rate == 0 {
            return Err(invalid("the file holds no audio"));
        }
        let duration_ms = self.samples * 1000 / u64::from(self.rate);
        Ok(AudioInfo { duration_ms, waveform: waveform(&self.blocks, AudioInfo::WAVEFORM_POINTS) })
    }
}

/// `points` peaks over equal slices of `blocks` (fewer when there are fewer
/// blocks), scaled so the loudest is 100.
fn waveform(blocks: &[f32], points: usize) -> Vec<u8> {
    if blocks.is_empty() {
        return Vec::new();
    }
    let n = points.min(blocks.len());
    let slices: Vec<f32> = (0..n)
        .map(|i| {
            let from = i * blocks.len() / n;
            let to = ((i + 1) * blocks.len() / n).max(from + 1);
            blocks[from..to].iter().copied().fold(0.0, f32::max)
        })
        .collect();
    let top = slices.iter().copied().fold(0.0, f32::max);
    if top <= f32::EPSILON {
        return vec![0; n];
    }
    // Rounded, so the loudest slice is exactly 100.
    slices.iter().map(|p| (p / top * 100.0).round().clamp(0.0, 100.0) as u8).collect()
}

#[cfg(test)]
mod tests;
