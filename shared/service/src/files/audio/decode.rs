//! Decoding a demuxed track into [`Levels`], one packet at a time.

use bytes::Bytes;
use omnibiz_domain::AudioInfo;
use opus_decoder::OpusDecoder;
use symphonia::core::codecs::{CODEC_TYPE_AAC, CodecParameters, Decoder as _, DecoderOptions};
use symphonia::core::formats::Packet;
use symphonia::default::codecs::AacDecoder;

use super::container::Container;
use super::levels::{Levels, push_buffer};
use super::model::{AudioError, Codec, Limits, Sink, invalid};
use super::{mp3, mp4, ogg, webm};

/// Opus is decoded at 16 kHz, mono: plenty for a waveform and a duration,
/// and cheaper than 48 kHz stereo.
const OPUS_RATE: u32 = 16_000;

/// The duration and waveform of an audio file, or why it is refused.
/// Runs on a blocking thread; a decoder that panics on a hostile file
/// refuses that file instead of taking the thread's task down.
pub fn summarize(bytes: Bytes, limits: Limits) -> Result<AudioInfo, AudioError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&bytes, limits)))
        .unwrap_or_else(|_| Err(invalid("the audio could not be decoded")))
}

fn decode(bytes: &Bytes, limits: Limits) -> Result<AudioInfo, AudioError> {
    let container = Container::sniff(bytes).ok_or_else(|| invalid("not an audio file of an accepted type"))?;
    let mut sink = Decoding { levels: Levels::new(limits), active: None, pre_skip: 0 };
    match container {
        Container::WebM => webm::read(bytes, &mut sink)?,
        Container::Ogg => ogg::read(bytes, &mut sink)?,
        Container::Mp4 => mp4::read(bytes, &mut sink)?,
        Container::Mp3 => mp3::read(bytes, &mut sink.levels)?,
    }
    sink.levels.skip(sink.pre_skip);
    sink.levels.finish()
}

enum Active {
    Opus { decoder: Box<OpusDecoder>, pcm: Vec<f32> },
    Aac(Box<AacDecoder>),
}

struct Decoding {
    levels: Levels,
    active: Option<Active>,
    /// Samples (at the decode rate) the encoder asked to be dropped.
    pre_skip: u64,
}

impl Sink for Decoding {
    fn codec(&mut self, codec: Codec) -> Result<(), AudioError> {
        if self.active.is_some() {
            return Err(invalid("the file declares its audio codec twice"));
        }
        self.active = Some(match codec {
            Codec::Opus { pre_skip, .. } => {
                let decoder = OpusDecoder::new(OPUS_RATE, 1).map_err(|e| invalid(format!("Opus: {e}")))?;
                let pcm = vec![0.0; decoder.max_frame_size_per_channel()];
                self.levels.rate(OPUS_RATE)?;
                // Pre-skip counts 48 kHz samples.
                self.pre_skip = u64::from(pre_skip) * u64::from(OPUS_RATE) / 48_000;
                Active::Opus { decoder: Box::new(decoder), pcm }
            }
            Codec::Aac { config } => {
                let mut params = CodecParameters::new();
                params.for_codec(CODEC_TYPE_AAC).with_extra_data(config.into_boxed_slice());
                let decoder = AacDecoder::try_new(&params, &DecoderOptions::default())
                    .map_err(|e| AudioError::Unsupported(format!("this AAC audio cannot be decoded: {e}")))?;
                Active::Aac(Box::new(decoder))
            }
        });
        Ok(())
    }

    fn packet(&mut self, data: &[u8]) -> Result<(), AudioError> {
        match self.active.as_mut().ok_or_else(|| invalid("audio data comes before its codec is declared"))? {
            Active::Opus { decoder, pcm } => {
                if data.is_empty() {
                    return Ok(());
                }
                let n = decoder
                    .decode_float(data, pcm, false)
                    .map_err(|e| invalid(format!("an Opus packet does not decode: {e}")))?;
                self.levels.add_samples(n as u64);
                self.levels.push(pcm[..n].iter().copied())
            }
            Active::Aac(decoder) => {
                let packet = Packet::new_from_slice(0, 0, 0, data);
                let buf = decoder.decode(&packet).map_err(|e| invalid(format!("an AAC frame does not decode: {e}")))?;
                push_buffer(&mut self.levels, buf)
            }
        }
    }
}
