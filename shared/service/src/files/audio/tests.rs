//! Real recordings in every accepted container (made with ffmpeg: 1.5 s of
//! a 440 Hz tone whose loudness swells and fades once a second), and
//! hostile files built here byte by byte.

use std::time::Duration;

use bytes::Bytes;

use super::levels::waveform;
use super::*;
use omnibiz_domain::AudioInfo;

const WEBM: &[u8] = include_bytes!("../../../testdata/voice.webm");
const OGG_STEREO: &[u8] = include_bytes!("../../../testdata/voice.ogg");
const M4A: &[u8] = include_bytes!("../../../testdata/voice.m4a");
const MP4_FRAGMENTED: &[u8] = include_bytes!("../../../testdata/voice-fragmented.mp4");
const MP4_OPUS: &[u8] = include_bytes!("../../../testdata/voice-opus.mp4");
const MP3: &[u8] = include_bytes!("../../../testdata/voice.mp3");
const VIDEO: &[u8] = include_bytes!("../../../testdata/video.webm");

fn summary(bytes: &[u8]) -> Result<AudioInfo, AudioError> {
    summarize(Bytes::copy_from_slice(bytes), Limits::default())
}

#[test]
fn every_accepted_container_gives_duration_and_waveform() {
    for (name, bytes, mime) in [
        ("webm", WEBM, "audio/webm"),
        ("ogg", OGG_STEREO, "audio/ogg"),
        ("m4a", M4A, "audio/mp4"),
        ("fragmented mp4", MP4_FRAGMENTED, "audio/mp4"),
        ("opus in mp4", MP4_OPUS, "audio/mp4"),
        ("mp3", MP3, "audio/mpeg"),
    ] {
        assert_eq!(Container::sniff(bytes).map(Container::mime), Some(mime), "{name}");
        let info = summary(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        // 1.5 s, give or take an encoder's padding frames.
        assert!((1400..=1600).contains(&info.duration_ms), "{name}: {} ms", info.duration_ms);
        assert_eq!(info.waveform.len(), AudioInfo::WAVEFORM_POINTS, "{name}");
        assert_eq!(info.waveform.iter().max(), Some(&100), "{name}");
        // The tone swells and fades once a second: a quiet trough at 0.75 s and
        // loud stretches around it.
        let trough = info.waveform[AudioInfo::WAVEFORM_POINTS / 2];
        let loud = info.waveform[AudioInfo::WAVEFORM_POINTS / 6];
        assert!(trough < 30 && loud > 70, "{name}: {:?}", info.waveform);
    }
}

#[test]
fn video_and_other_codecs_are_refused_as_such() {
    assert!(matches!(summary(VIDEO), Err(AudioError::Unsupported(m)) if m.contains("video")));
    assert_eq!(Container::sniff(b"%PDF-1.7"), None);
    assert!(matches!(summary(b"not audio at all"), Err(AudioError::Invalid(_))));
}

#[test]
fn a_recording_over_the_length_limit_is_refused() {
    let limits = Limits { max_duration: Duration::from_secs(1), ..Limits::default() };
    assert_eq!(summarize(Bytes::from_static(WEBM), limits), Err(AudioError::TooLong(Duration::from_secs(1))));
}

#[test]
fn a_decode_past_its_deadline_is_refused() {
    let limits = Limits { deadline: Duration::ZERO, ..Limits::default() };
    assert_eq!(summarize(Bytes::from_static(OGG_STEREO), limits), Err(AudioError::TooSlow(Duration::ZERO)));
}

#[test]
fn truncated_files_are_refused_or_read_as_far_as_they_go() {
    for (name, bytes) in [("webm", WEBM), ("ogg", OGG_STEREO), ("m4a", M4A), ("mp3", MP3)] {
        for cut in [12, 40, 200, bytes.len() / 2, bytes.len() - 1] {
            // Never a panic, never a hang: an answer either way.
            if let Ok(info) = summary(&bytes[..cut]) {
                assert!(info.duration_ms <= 1600, "{name} cut at {cut}");
            }
        }
    }
}

/// An EBML element: id bytes, a size (8-byte vint), data.
fn element(id: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.push(0x01);
    out.extend_from_slice(&(data.len() as u64).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out
}

fn ebml_header() -> Vec<u8> {
    element(&[0x1A, 0x45, 0xDF, 0xA3], &element(&[0x42, 0x82], b"webm"))
}

#[test]
fn webm_sizes_past_the_file_never_become_allocations() {
    // A CodecPrivate declaring 2^55 bytes inside a Tracks element: the
    // general-purpose demuxer allocates that much before reading it.
    let mut huge = vec![0x63, 0xA2, 0x01, 0x80, 0, 0, 0, 0, 0, 0];
    huge.extend_from_slice(b"OpusHead");
    let mut file = ebml_header();
    let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &huge));
    file.extend(element(&[0x18, 0x53, 0x80, 0x67], &tracks));
    let err = summary(&file).expect_err("refused");
    assert!(matches!(err, AudioError::Invalid(ref m) if m.contains("runs past")), "{err}");

    // A laced block whose EBML lacing lists a frame of 2^48 bytes.
    let mut entry = element(&[0xD7], &[1]);
    entry.extend(element(&[0x83], &[2]));
    entry.extend(element(&[0x86], b"A_OPUS"));
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1, 0x38, 1, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    entry.extend(element(&[0x63, 0xA2], &head));
    let mut block = vec![0x81, 0, 0, 0x06, 2, 0x01, 0, 1, 0, 0, 0, 0, 0];
    block.extend_from_slice(&[0xFC; 8]);
    let cluster = element(&[0x1F, 0x43, 0xB6, 0x75], &element(&[0xA3], &block));
    let mut segment = element(&[0x16, 0x54, 0xAE, 0x6B], &element(&[0xAE], &entry));
    segment.extend(cluster);
    let mut file = ebml_header();
    file.extend(element(&[0x18, 0x53, 0x80, 0x67], &segment));
    assert!(matches!(summary(&file), Err(AudioError::Invalid(m)) if m.contains("laced")));
}

/// An MP4 box.
fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

#[test]
fn mp4_counts_past_their_box_never_become_allocations() {
    // The recorded file with its sample-size table claiming 2^32 - 1 entries:
    // the general-purpose demuxer reserves 16 GiB for them.
    let at = M4A.windows(4).position(|w| w == b"stsz").expect("stsz") + 4;
    let mut file = M4A.to_vec();
    file[at + 8..at + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = summary(&file).expect_err("refused");
    assert!(matches!(err, AudioError::Invalid(ref m) if m.contains("more entries")), "{err}");

    // A box declaring a 64-bit size far past the end of the file.
    let mut file = mp4_box(b"ftyp", b"M4A \0\0\0\0");
    file.extend_from_slice(&[0, 0, 0, 1]);
    file.extend_from_slice(b"moov");
    file.extend_from_slice(&(1u64 << 60).to_be_bytes());
    assert!(matches!(summary(&file), Err(AudioError::Invalid(m)) if m.contains("runs past")));
}

#[test]
fn ogg_without_opus_is_refused_as_unsupported() {
    // One BOS page of a Vorbis stream.
    let mut page = b"OggS\0\x02".to_vec();
    page.extend_from_slice(&[0; 20]);
    page.push(1);
    page.push(7);
    page.extend_from_slice(b"\x01vorbis");
    assert!(matches!(summary(&page), Err(AudioError::Unsupported(m)) if m.contains("Opus")));
}

#[test]
fn id3_tags_are_stepped_over() {
    let mut tagged = b"ID3\x04\0\0\0\0\0\x10".to_vec();
    tagged.extend_from_slice(&[0xFF; 16]);
    tagged.extend_from_slice(MP3);
    let info = summary(&tagged).expect("decodes");
    assert!((1400..=1600).contains(&info.duration_ms), "{}", info.duration_ms);
}

#[test]
fn waveforms_scale_to_the_loudest_slice() {
    assert_eq!(waveform(&[0.1, 0.2, 0.4], 64), vec![25, 50, 100]);
    assert_eq!(waveform(&[0.0, 0.0], 64), vec![0, 0]);
    let many: Vec<f32> = (0..640).map(|i| i as f32).collect();
    let w = waveform(&many, 64);
    assert_eq!(w.len(), 64);
    assert!(w.windows(2).all(|p| p[0] <= p[1]));
    assert_eq!(w[63], 100);
}
