//! Which container a file is, from its first bytes.

use super::{mp3, webm};

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
