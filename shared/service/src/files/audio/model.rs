//! What the demuxers, decoders and callers share: errors, limits, codecs,
//! and the sink a demuxer feeds.

use std::time::Duration;

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
