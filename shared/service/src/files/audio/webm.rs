//! WebM (Matroska): the audio track's codec and its blocks, read from the
//! bytes in memory. Segments and clusters of unknown size (what
//! `MediaRecorder` writes while it streams) are read to where the next
//! top-level element starts; every other size must fit inside its parent.

use super::model::{AudioError, Codec, Sink, invalid, opus_head};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CLUSTER: u32 = 0x1F43_B675;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
/// Children of a Segment: any of them ends a cluster of unknown size.
const SEGMENT_CHILDREN: [u32; 8] =
    [0x114D_9B74, 0x1549_A966, TRACKS, CLUSTER, 0x1C53_BB6B, 0x1254_C367, 0x1043_A770, 0x1941_A469];

const VIDEO: u64 = 1;
const AUDIO: u64 = 2;

/// An element's header: its id, its size (`None`: unknown), where its data starts.
struct Header {
    id: u32,
    size: Option<u64>,
    data: usize,
}

/// A variable-length integer at `pos`: its value with the length marker
/// removed (`None` when all value bits are set: "unknown") and its length.
fn vint(buf: &[u8], pos: usize) -> Option<(Option<u64>, usize)> {
    let first = *buf.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = buf.get(pos..pos + len)?;
    let mut value = u64::from(first) & (0xFF >> len);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some(((value != all_ones).then_some(value), len))
}

/// The header at `pos`, or `None` when the bytes before `end` stop inside it.
fn header(buf: &[u8], pos: usize, end: usize) -> Result<Option<Header>, AudioError> {
    let buf = &buf[..end];
    let Some(&first) = buf.get(pos) else { return Ok(None) };
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(invalid("the WebM file has a malformed element id"));
    }
    let Some(id_bytes) = buf.get(pos..pos + id_len) else { return Ok(None) };
    let id = id_bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    let Some((size, size_len)) = vint(buf, pos + id_len) else {
        return if buf.len() < pos + id_len + 8 {
            Ok(None)
        } else {
            Err(invalid("the WebM file has a malformed size"))
        };
    };
    Ok(Some(Header { id, size, data: pos + id_len + size_len }))
}

/// Where an element of known size ends; it must end within `parent_end`.
fn end_of(h: &Header, parent_end: usize) -> Result<usize, AudioError> {
    let size = h.size.ok_or_else(|| invalid(format!("the WebM element {:X} has an unknown size", h.id)))?;
    usize::try_from(size)
        .ok()
        .and_then(|s| h.data.checked_add(s))
        .filter(|&e| e <= parent_end)
        .ok_or_else(|| invalid(format!("the WebM element {:X} runs past the end of its parent", h.id)))
}

fn uint(data: &[u8]) -> Result<u64, AudioError> {
    if data.len() > 8 {
        return Err(invalid("a WebM number is longer than 8 bytes"));
    }
    Ok(data.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Each child element of `buf[from..to]`: (id, data).
fn children(buf: &[u8], from: usize, to: usize) -> Result<Vec<(u32, &[u8])>, AudioError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let h = header(buf, pos, to)?.ok_or_else(|| invalid("a WebM element is cut short"))?;
        let end = end_of(&h, to)?;
        out.push((h.id, &buf[h.data..end]));
        pos = end;
    }
    Ok(out)
}

/// Whether the start of a file is an EBML header naming WebM or Matroska.
pub(super) fn is_webm(head: &[u8]) -> bool {
    doc_type(head).is_some_and(|t| t == b"webm" || t == b"matroska")
}

fn doc_type(buf: &[u8]) -> Option<&[u8]> {
    let h = header(buf, 0, buf.len()).ok()??;
    if h.id != EBML {
        return None;
    }
    let end = end_of(&h, buf.len()).ok()?;
    children(buf, h.data, end).ok()?.into_iter().find(|(id, _)| *id == DOC_TYPE).map(|(_, d)| d)
}

/// Reads a WebM file's audio track into `sink`.
pub(super) fn read(buf: &[u8], sink: &mut dyn Sink) -> Result<(), AudioError> {
    let h = header(buf, 0, buf.len())?.filter(|h| h.id == EBML).ok_or_else(|| invalid("not a WebM file"))?;
    let mut pos = end_of(&h, buf.len())?;
    if !is_webm(buf) {
        return Err(AudioError::Unsupported("the EBML file is neither WebM nor Matroska".into()));
    }
    let seg = header(buf, pos, buf.len())?
        .filter(|h| h.id == SEGMENT)
        .ok_or_else(|| invalid("the WebM file has no Segment"))?;
    // A Segment of known size may still be cut short (an upload of a recording in progress).
    let seg_end =
        seg.size.and_then(|s| usize::try_from(s).ok()).map_or(buf.len(), |s| seg.data.saturating_add(s).min(buf.len()));
    pos = seg.data;
    let mut track = None;
    while pos < seg_end {
        let Some(h) = header(buf, pos, seg_end)? else { break };
        match h.id {
            TRACKS => {
                let end = end_of(&h, seg_end)?;
                track = Some(tracks(buf, h.data, end, sink)?);
                pos = end;
            }
            CLUSTER => {
                let number = track.ok_or_else(|| invalid("the WebM file has a Cluster before its Tracks"))?;
                pos = cluster(buf, &h, seg_end, number, sink)?;
            }
            _ => pos = end_of(&h, seg_end)?,
        }
    }
    if track.is_none() {
        return Err(invalid("the WebM file has no Tracks"));
    }
    Ok(())
}

/// The audio track's number, after giving its codec to `sink`.
fn tracks(buf: &[u8], from: usize, to: usize, sink: &mut dyn Sink) -> Result<u64, AudioError> {
    let mut audio = None;
    for (id, entry) in children(buf, from, to)? {
        if id != TRACK_ENTRY {
            continue;
        }
        let (mut number, mut kind, mut codec, mut private) = (None, None, None, None);
        for (id, data) in children(entry, 0, entry.len())? {
            match id {
                TRACK_NUMBER => number = Some(uint(data)?),
                TRACK_TYPE => kind = Some(uint(data)?),
                CODEC_ID => codec = Some(String::from_utf8_lossy(data).trim_end_matches('\0').to_owned()),
                CODEC_PRIVATE => private = Some(data),
                _ => {}
            }
        }
        match kind {
            Some(VIDEO) => {
                return Err(AudioError::Unsupported("the file holds video; voice messages take audio only".into()));
            }
            Some(AUDIO) if audio.is_none() => {
                let number = number.ok_or_else(|| invalid("the WebM audio track has no number"))?;
                audio = Some((number, codec.unwrap_or_default(), private));
            }
            _ => {}
        }
    }
    let (number, codec, private) = audio.ok_or_else(|| invalid("the WebM file has no audio track"))?;
    let codec = match codec.as_str() {
        "A_OPUS" => opus_head(private.ok_or_else(|| invalid("the Opus track has no OpusHead"))?)?,
        "A_AAC" => {
            Codec::Aac { config: private.ok_or_else(|| invalid("the AAC track has no configuration"))?.to_vec() }
        }
        other => {
            return Err(AudioError::Unsupported(format!(
                "{other} audio is not accepted (voice messages take Opus, AAC or MP3)"
            )));
        }
    };
    sink.codec(codec)?;
    Ok(number)
}

/// Reads a cluster's blocks; returns where the next element starts.
fn cluster(buf: &[u8], h: &Header, seg_end: usize, track: u64, sink: &mut dyn Sink) -> Result<usize, AudioError> {
    let known = h.size.is_some();
    // A cluster cut short by the end of the file is read as far as it goes.
    let end = match h.size.and_then(|s| usize::try_from(s).ok()) {
        Some(s) => h.data.saturating_add(s).min(seg_end),
        None => seg_end,
    };
    let mut pos = h.data;
    while pos < end {
        let Some(ch) = header(buf, pos, end)? else { break };
        if !known && (SEGMENT_CHILDREN.contains(&ch.id) || ch.id == EBML) {
            return Ok(pos);
        }
        let Ok(child_end) = end_of(&ch, end) else {
            if end == buf.len() {
                break; // the last block of a file cut short
            }
            return Err(invalid("a WebM block runs past the end of its cluster"));
        };
        match ch.id {
            SIMPLE_BLOCK => block(&buf[ch.data..child_end], track, sink)?,
            BLOCK_GROUP => {
                for (id, data) in children(buf, ch.data, child_end)? {
                    if id == BLOCK {
                        block(data, track, sink)?;
                    }
                }
            }
            _ => {}
        }
        pos = child_end;
    }
    Ok(end)
}

/// A (Simple)Block: its frames, when it belongs to `track`.
fn block(data: &[u8], track: u64, sink: &mut dyn Sink) -> Result<(), AudioError> {
    let (number, n) = vint(data, 0).ok_or_else(|| invalid("a WebM block has a malformed track number"))?;
    if number != Some(track) {
        return Ok(());
    }
    let flags = *data.get(n + 2).ok_or_else(|| invalid("a WebM block is cut short"))?;
    let payload = &data[n + 3..];
    match (flags >> 1) & 3 {
        0 => sink.packet(payload),
        lacing => laced(payload, lacing, sink),
    }
}

/// Frames of a laced block (Xiph = 1, fixed = 2, EBML = 3).
fn laced(payload: &[u8], lacing: u8, sink: &mut dyn Sink) -> Result<(), AudioError> {
    let cut = || invalid("a laced WebM block is malformed");
    let count = usize::from(*payload.first().ok_or_else(cut)?) + 1;
    let mut pos = 1;
    let mut sizes = Vec::with_capacity(count);
    match lacing {
        1 => {
            for _ in 1..count {
                let mut size = 0usize;
                loop {
                    let b = *payload.get(pos).ok_or_else(cut)?;
                    pos += 1;
                    size += usize::from(b);
                    if b != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        2 => {
            let rest = payload.len() - pos;
            if !rest.is_multiple_of(count) {
                return Err(cut());
            }
            sizes.resize(count - 1, rest / count);
        }
        _ => {
            let (first, n) = vint(payload, pos).ok_or_else(cut)?;
            pos += n;
            let mut size = i64::try_from(first.ok_or_else(cut)?).map_err(|_| cut())?;
            sizes.push(usize::try_from(size).map_err(|_| cut())?);
            for _ in 2..count {
                let (raw, n) = vint(payload, pos).ok_or_else(cut)?;
                pos += n;
                let bias = (1i64 << (7 * n - 1)) - 1;
                let diff = i64::try_from(raw.ok_or_else(cut)?).map_err(|_| cut())? - bias;
                size = size.checked_add(diff).filter(|s| *s >= 0).ok_or_else(cut)?;
                sizes.push(usize::try_from(size).map_err(|_| cut())?);
            }
        }
    }
    let listed: usize = sizes.iter().try_fold(0usize, |acc, s| acc.checked_add(*s)).ok_or_else(cut)?;
    if listed > payload.len() - pos {
        return Err(cut());
    }
    for size in sizes {
        sink.packet(&payload[pos..pos + size])?;
        pos += size;
    }
    sink.packet(&payload[pos..])
}
