//! Ogg (RFC 3533) carrying Opus (RFC 7845): pages are read from the bytes
//! in memory, packets joined across pages, and the first Opus stream's
//! audio packets handed on. Other logical streams are skipped.

use super::model::{AudioError, Sink, invalid, opus_head};

/// Longest Opus packet accepted: far above what an encoder writes
/// (RFC 6716 caps a frame at 1275 bytes, a packet at 120 ms of them).
const MAX_PACKET: usize = 64 * 1024;

/// Reads an Ogg file's Opus stream into `sink`.
pub(super) fn read(buf: &[u8], sink: &mut dyn Sink) -> Result<(), AudioError> {
    let mut pos = 0;
    let mut serial = None;
    let mut other_streams = false;
    let mut packet: Vec<u8> = Vec::new();
    let mut index = 0u64;
    while buf.len() - pos >= 27 {
        let page = &buf[pos..];
        if !page.starts_with(b"OggS") || page[4] != 0 {
            return Err(invalid("an Ogg page does not start where the previous one ended"));
        }
        let flags = page[5];
        let this = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
        let segments = usize::from(page[26]);
        let Some(table) = page.get(27..27 + segments) else { break };
        let body_len: usize = table.iter().map(|b| usize::from(*b)).sum();
        let Some(body) = page.get(27 + segments..27 + segments + body_len) else { break };
        pos += 27 + segments + body_len;
        match serial {
            None if flags & 0x02 != 0 && body.starts_with(b"OpusHead") => serial = Some(this),
            None => {
                other_streams |= flags & 0x02 != 0;
                continue;
            }
            Some(s) if s != this => continue,
            Some(_) => {}
        }
        // A packet continued from a page we did not read is dropped.
        let mut skipping = flags & 0x01 != 0 && packet.is_empty() && index == 0;
        let mut off = 0;
        for &lace in table {
            let lace = usize::from(lace);
            if !skipping {
                if packet.len() + lace > MAX_PACKET {
                    return Err(invalid("an Opus packet is longer than 64 KiB"));
                }
                packet.extend_from_slice(&body[off..off + lace]);
            }
            off += lace;
            if lace < 255 {
                if !skipping {
                    match index {
                        0 => sink.codec(opus_head(&packet)?)?,
                        1 if !packet.starts_with(b"OpusTags") => {
                            return Err(invalid("the Opus stream's second packet is not OpusTags"));
                        }
                        1 => {}
                        _ => sink.packet(&packet)?,
                    }
                    index += 1;
                }
                packet.clear();
                skipping = false;
            }
        }
    }
    match serial {
        Some(_) => Ok(()),
        None if other_streams => Err(AudioError::Unsupported(
            "the Ogg file holds no Opus audio (voice messages take Opus, AAC or MP3)".into(),
        )),
        None => Err(invalid("the Ogg file holds no stream")),
    }
}
