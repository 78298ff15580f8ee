//! MP3: ID3v2 tags are stepped over here (their sizes are the file's
//! word, so no parser of ours or Symphonia's reads them), and the MPEG
//! frames that follow go to Symphonia's MP3 reader and decoder, whose
//! buffers are bounded by the frame format itself.

use bytes::Bytes;
use symphonia::core::codecs::{Decoder as _, DecoderOptions};
use symphonia::core::errors::Error;
use symphonia::core::formats::{FormatOptions, FormatReader as _};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::default::codecs::MpaDecoder;
use symphonia::default::formats::MpaReader;

use super::levels::{Levels, push_buffer};
use super::model::{AudioError, invalid};

/// Whether `head` starts with an MPEG audio frame header (layer III).
pub(super) fn frame_sync(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && (head[1] >> 1) & 3 == 1 && head[2] >> 4 != 0xF
}

/// Where the audio starts: after any ID3v2 tags.
fn audio_start(buf: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(tag) = buf.get(pos..pos + 10).filter(|t| t.starts_with(b"ID3")) {
        let size = tag[6..10].iter().fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F));
        let footer = if tag[5] & 0x10 != 0 { 10 } else { 0 };
        pos = pos.saturating_add(10 + size + footer);
    }
    pos.min(buf.len())
}

/// Decodes an MP3 file's frames into `levels`.
pub(super) fn read(bytes: &Bytes, levels: &mut Levels) -> Result<(), AudioError> {
    let audio = bytes.slice(audio_start(bytes)..);
    if !frame_sync(&audio) {
        return Err(invalid("the MP3 file has no MPEG audio frame after its tags"));
    }
    let source = MediaSourceStream::new(Box::new(std::io::Cursor::new(audio)), MediaSourceStreamOptions::default());
    let mut reader = MpaReader::try_new(source, &FormatOptions::default())
        .map_err(|e| invalid(format!("not a valid MP3 file: {e}")))?;
    let params = reader.tracks().first().ok_or_else(|| invalid("the MP3 file has no audio"))?.codec_params.clone();
    let mut decoder = MpaDecoder::try_new(&params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(format!("this MP3 file cannot be decoded: {e}")))?;
    let (mut good, mut bad) = (0u64, 0u64);
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if good > 0 => {
                // Junk after the last frame (an ID3v1 or APE tag): the audio ended.
                tracing::debug!(error = %e, "stopped reading an MP3 file");
                break;
            }
            Err(e) => return Err(invalid(format!("not a valid MP3 file: {e}"))),
        };
        match decoder.decode(&packet) {
            Ok(buf) => {
                good += 1;
                push_buffer(levels, buf)?;
            }
            // A damaged frame is skipped, as players do; a file of them is refused below.
            Err(Error::DecodeError(_)) => bad += 1,
            Err(e) => return Err(invalid(format!("the MP3 audio does not decode: {e}"))),
        }
        if bad > 16 && bad > good {
            return Err(invalid("most of the MP3 file's frames do not decode"));
        }
    }
    Ok(())
}
