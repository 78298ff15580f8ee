//! MP4 (ISO BMFF): the audio track's codec and its samples, read from the
//! bytes in memory — from the sample tables (`stbl`) of a plain file, or
//! from movie fragments (`moof`/`trun`, what `MediaRecorder` writes). No
//! table is copied: entries are read where they lie, and every count is
//! checked against the bytes its box really has.

use super::model::{AudioError, Codec, Sink, invalid, opus_config};

/// A box: its type, its payload, and where it started in the file.
#[derive(Clone, Copy)]
struct Bx<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    start: usize,
}

/// The boxes directly inside `buf[from..to]`.
fn boxes(buf: &[u8], from: usize, to: usize) -> Result<Vec<Bx<'_>>, AudioError> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let cut = || invalid("an MP4 box runs past the end of its parent");
        let head = buf.get(pos..pos + 8).filter(|_| pos + 8 <= to).ok_or_else(cut)?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (header, size) = match size32 {
            0 => (8, (to - pos) as u64),
            1 => {
                let large = buf.get(pos + 8..pos + 16).filter(|_| pos + 16 <= to).ok_or_else(cut)?;
                (16, u64::from_be_bytes(large.try_into().map_err(|_| cut())?))
            }
            n => (8, u64::from(n)),
        };
        let end = usize::try_from(size).ok().and_then(|s| pos.checked_add(s)).filter(|&e| e <= to).ok_or_else(cut)?;
        if end < pos + header {
            return Err(invalid("an MP4 box is smaller than its header"));
        }
        out.push(Bx { kind, body: &buf[pos + header..end], start: pos });
        pos = end;
    }
    Ok(out)
}

fn inner<'a>(b: &Bx<'a>) -> Result<Vec<Bx<'a>>, AudioError> {
    boxes(b.body, 0, b.body.len())
}

fn find<'a>(list: &[Bx<'a>], kind: &[u8; 4]) -> Option<Bx<'a>> {
    list.iter().find(|b| &b.kind == kind).copied()
}

fn be32(d: &[u8], at: usize) -> Result<u32, AudioError> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| invalid("an MP4 box is cut short"))
}

fn be64(d: &[u8], at: usize) -> Result<u64, AudioError> {
    d.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| invalid("an MP4 box is cut short"))
}

/// A table of `count` entries of `width` bytes starting at `at`, which
/// must all be in `d`.
fn table(d: &[u8], at: usize, width: usize) -> Result<(&[u8], usize), AudioError> {
    let count = be32(d, at)? as usize;
    let bytes = count.checked_mul(width).ok_or_else(|| invalid("an MP4 table is too large"))?;
    let t = d
        .get(at + 4..)
        .and_then(|r| r.get(..bytes))
        .ok_or_else(|| invalid("an MP4 table lists more entries than its box holds"))?;
    Ok((t, count))
}

/// The audio track: its id and the boxes that describe its samples.
struct Track<'a> {
    id: u32,
    stbl: Vec<Bx<'a>>,
}

/// Reads an MP4 file's first audio track into `sink`.
pub(super) fn read(buf: &[u8], sink: &mut dyn Sink) -> Result<(), AudioError> {
    let top = boxes(buf, 0, buf.len())?;
    let moov = find(&top, b"moov").ok_or_else(|| invalid("the MP4 file has no movie box (moov)"))?;
    let moov_boxes = inner(&moov)?;
    let mut audio = None;
    for trak in moov_boxes.iter().filter(|b| &b.kind == b"trak") {
        let parts = inner(trak)?;
        let tkhd = find(&parts, b"tkhd").ok_or_else(|| invalid("an MP4 track has no header"))?;
        let id = be32(tkhd.body, if tkhd.body.first() == Some(&1) { 20 } else { 12 })?;
        let mdia = inner(&find(&parts, b"mdia").ok_or_else(|| invalid("an MP4 track has no media box"))?)?;
        let handler = find(&mdia, b"hdlr").map(|h| h.body.get(8..12).unwrap_or_default().to_vec());
        match handler.as_deref() {
            Some(b"vide") => {
                return Err(AudioError::Unsupported("the file holds video; voice messages take audio only".into()));
            }
            Some(b"soun") if audio.is_none() => {
                let minf = inner(&find(&mdia, b"minf").ok_or_else(|| invalid("an MP4 track has no minf box"))?)?;
                let stbl = inner(&find(&minf, b"stbl").ok_or_else(|| invalid("an MP4 track has no sample table"))?)?;
                audio = Some(Track { id, stbl });
            }
            _ => {}
        }
    }
    let track = audio.ok_or_else(|| invalid("the MP4 file has no audio track"))?;
    let stsd = find(&track.stbl, b"stsd").ok_or_else(|| invalid("the MP4 audio track has no sample description"))?;
    sink.codec(sample_entry(stsd.body)?)?;
    let fragmented = find(&moov_boxes, b"mvex").is_some();
    if fragmented {
        let mvex = inner(&find(&moov_boxes, b"mvex").expect("checked"))?;
        let default_size = mvex
            .iter()
            .filter(|b| &b.kind == b"trex")
            .find(|b| be32(b.body, 4).ok() == Some(track.id))
            .map(|b| be32(b.body, 16))
            .transpose()?
            .unwrap_or(0);
        // Samples listed in the sample table first (usually none), then each fragment's.
        samples(buf, &track.stbl, sink)?;
        for moof in top.iter().filter(|b| &b.kind == b"moof") {
            fragment(buf, moof, track.id, default_size, sink)?;
        }
        Ok(())
    } else {
        samples(buf, &track.stbl, sink)
    }
}

/// The codec of the first sample entry (`mp4a` with `esds`, or `Opus` with `dOps`).
fn sample_entry(stsd: &[u8]) -> Result<Codec, AudioError> {
    // Full box header (4), entry count (4), then the entries as boxes.
    let entries = boxes(stsd, 8.min(stsd.len()), stsd.len())?;
    let entry = entries.first().ok_or_else(|| invalid("the MP4 sample description is empty"))?;
    // An audio sample entry: 28 bytes of fields; QuickTime's versions 1 and 2 add 16 or 36.
    let version = u16::from_be_bytes([*entry.body.get(8).unwrap_or(&0), *entry.body.get(9).unwrap_or(&0)]);
    let fields = match version {
        1 => 44,
        2 => 64,
        _ => 28,
    };
    let children = boxes(entry.body, fields.min(entry.body.len()), entry.body.len())?;
    match &entry.kind {
        b"mp4a" => {
            let esds = find(&children, b"esds").ok_or_else(|| invalid("the AAC track has no esds box"))?;
            Ok(Codec::Aac { config: decoder_config(esds.body.get(4..).unwrap_or_default())? })
        }
        b"Opus" => {
            let d = find(&children, b"dOps").ok_or_else(|| invalid("the Opus track has no dOps box"))?.body;
            let short = || invalid("the Opus track's dOps box is cut short");
            let channels = *d.get(1).ok_or_else(short)?;
            let pre_skip = u16::from_be_bytes([*d.get(2).ok_or_else(short)?, *d.get(3).ok_or_else(short)?]);
            opus_config(channels, pre_skip, *d.get(10).ok_or_else(short)?)
        }
        other => Err(AudioError::Unsupported(format!(
            "MP4 audio of type {} is not accepted (voice messages take Opus, AAC or MP3)",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The AudioSpecificConfig inside an `esds` box's descriptors (ISO 14496-1):
/// ES_Descriptor (3) › DecoderConfigDescriptor (4) › DecoderSpecificInfo (5).
fn decoder_config(mut d: &[u8]) -> Result<Vec<u8>, AudioError> {
    let bad = || invalid("the AAC track's esds box is malformed");
    loop {
        let tag = *d.first().ok_or_else(bad)?;
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = *d.get(i).ok_or_else(bad)?;
            len = (len << 7) | usize::from(b & 0x7F);
            i += 1;
            if b & 0x80 == 0 || i > 4 {
                break;
            }
        }
        let body = d.get(i..i + len).ok_or_else(bad)?;
        match tag {
            3 => {
                let flags = *body.get(2).ok_or_else(bad)?;
                let mut skip = 3;
                if flags & 0x80 != 0 {
                    skip += 2;
                }
                if flags & 0x40 != 0 {
                    skip += 1 + usize::from(*body.get(skip).ok_or_else(bad)?);
                }
                if flags & 0x20 != 0 {
                    skip += 2;
                }
                d = body.get(skip..).ok_or_else(bad)?;
            }
            4 => {
                if body.first() != Some(&0x40) {
                    return Err(AudioError::Unsupported(
                        "the MP4 audio is not AAC (voice messages take Opus, AAC or MP3)".into(),
                    ));
                }
                d = body.get(13..).ok_or_else(bad)?;
            }
            5 => return Ok(body.to_vec()),
            _ => return Err(bad()),
        }
    }
}

/// Samples from a sample table: sizes (`stsz`), chunk offsets (`stco` or
/// `co64`) and how many samples each chunk has (`stsc`).
fn samples(buf: &[u8], stbl: &[Bx<'_>], sink: &mut dyn Sink) -> Result<(), AudioError> {
    let Some(stsz) = find(stbl, b"stsz") else { return Ok(()) };
    let constant = be32(stsz.body, 4)?;
    let (sizes, count) = if constant == 0 { table(stsz.body, 8, 4)? } else { (&[][..], be32(stsz.body, 8)? as usize) };
    if count == 0 {
        return Ok(());
    }
    let (offsets, chunks, width) = match (find(stbl, b"stco"), find(stbl, b"co64")) {
        (Some(b), _) => {
            let (t, n) = table(b.body, 4, 4)?;
            (t, n, 4)
        }
        (None, Some(b)) => {
            let (t, n) = table(b.body, 4, 8)?;
            (t, n, 8)
        }
        (None, None) => return Err(invalid("the MP4 sample table has no chunk offsets")),
    };
    let stsc = find(stbl, b"stsc").ok_or_else(|| invalid("the MP4 sample table has no sample-to-chunk box"))?;
    let (runs, run_count) = table(stsc.body, 4, 12)?;
    let mut sample = 0usize;
    // Runs list their first chunk (1-based, ascending): one pass over both.
    let mut r = 0usize;
    for chunk in 0..chunks {
        while r + 1 < run_count && be32(runs, (r + 1) * 12)? as usize <= chunk + 1 {
            r += 1;
        }
        let per_chunk = match run_count {
            0 => 0,
            _ if be32(runs, r * 12)? as usize > chunk + 1 => 0,
            _ => be32(runs, r * 12 + 4)? as usize,
        };
        let mut at = if width == 4 { u64::from(be32(offsets, chunk * 4)?) } else { be64(offsets, chunk * 8)? };
        for _ in 0..per_chunk {
            if sample == count {
                return Ok(());
            }
            let size = if constant == 0 { be32(sizes, sample * 4)? } else { constant };
            sink.packet(slice(buf, at, u64::from(size))?)?;
            at += u64::from(size);
            sample += 1;
        }
    }
    Ok(())
}

/// One movie fragment's samples of `track`.
fn fragment(buf: &[u8], moof: &Bx<'_>, track: u32, trex_size: u32, sink: &mut dyn Sink) -> Result<(), AudioError> {
    for traf in inner(moof)?.iter().filter(|b| &b.kind == b"traf") {
        let parts = inner(traf)?;
        let tfhd = find(&parts, b"tfhd").ok_or_else(|| invalid("an MP4 fragment has no tfhd box"))?.body;
        let flags = be32(tfhd, 0)? & 0x00FF_FFFF;
        if be32(tfhd, 4)? != track {
            continue;
        }
        let mut at = 8;
        let mut base = moof.start as u64;
        if flags & 0x01 != 0 {
            base = be64(tfhd, at)?;
            at += 8;
        }
        if flags & 0x02 != 0 {
            at += 4;
        }
        if flags & 0x08 != 0 {
            at += 4;
        }
        let default_size = if flags & 0x10 != 0 { be32(tfhd, at)? } else { trex_size };
        for trun in parts.iter().filter(|b| &b.kind == b"trun") {
            run(buf, trun.body, base, default_size, sink)?;
        }
    }
    Ok(())
}

/// A track run: its samples, laid out from `base` + its data offset.
fn run(buf: &[u8], trun: &[u8], base: u64, default_size: u32, sink: &mut dyn Sink) -> Result<(), AudioError> {
    let flags = be32(trun, 0)? & 0x00FF_FFFF;
    let count = be32(trun, 4)? as usize;
    let mut at = 8;
    let mut data = base;
    if flags & 0x01 != 0 {
        let offset = i64::from(be32(trun, at)? as i32);
        data = base.checked_add_signed(offset).ok_or_else(|| invalid("an MP4 track run points before the file"))?;
        at += 4;
    }
    if flags & 0x04 != 0 {
        at += 4;
    }
    let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|f| flags & **f != 0).count() * 4;
    let listed = count.checked_mul(per_sample).ok_or_else(|| invalid("an MP4 track run is too large"))?;
    if trun.len() < at + listed {
        return Err(invalid("an MP4 track run lists more samples than its box holds"));
    }
    for i in 0..count {
        let mut field = at + i * per_sample;
        if flags & 0x100 != 0 {
            field += 4;
        }
        let size = if flags & 0x200 != 0 { be32(trun, field)? } else { default_size };
        sink.packet(slice(buf, data, u64::from(size))?)?;
        data += u64::from(size);
    }
    Ok(())
}

/// `len` bytes of the file at `at`; an empty or out-of-range sample is refused
/// (so a run of samples always walks forward through real bytes).
fn slice(buf: &[u8], at: u64, len: u64) -> Result<&[u8], AudioError> {
    let from = usize::try_from(at).ok();
    let to = from.and_then(|f| usize::try_from(len).ok().and_then(|l| f.checked_add(l)));
    match (from, to) {
        (Some(f), Some(t)) if len > 0 && t <= buf.len() => Ok(&buf[f..t]),
        _ => Err(invalid("an MP4 sample lies outside the file")),
    }
}
