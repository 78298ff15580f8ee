//! Levels gathered while decoding, and the waveform made of them.

use std::time::Instant;

use omnibiz_domain::AudioInfo;
use symphonia::core::audio::{AudioBufferRef, SampleBuffer};

use super::model::{AudioError, Limits, invalid};

/// Levels gathered while decoding: the peak of every 10 ms block, and how
/// many samples there were.
pub(super) struct Levels {
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
    pub(super) fn new(limits: Limits) -> Self {
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
    pub(super) fn rate(&mut self, rate: u32) -> Result<(), AudioError> {
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
    pub(super) fn push(&mut self, samples: impl Iterator<Item = f32>) -> Result<(), AudioError> {
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
    pub(super) fn skip(&mut self, n: u64) {
        self.samples = self.samples.saturating_sub(n);
    }

    pub(super) fn add_samples(&mut self, n: u64) {
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

    pub(super) fn finish(mut self) -> Result<AudioInfo, AudioError> {
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
pub(super) fn waveform(blocks: &[f32], points: usize) -> Vec<u8> {
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

/// Adds a Symphonia buffer's frames to `levels` (the loudest channel of each).
pub(super) fn push_buffer(levels: &mut Levels, buf: AudioBufferRef<'_>) -> Result<(), AudioError> {
    let spec = *buf.spec();
    let frames = buf.frames();
    if frames == 0 {
        return Ok(());
    }
    levels.rate(spec.rate)?;
    let channels = spec.channels.count().max(1);
    let mut samples = SampleBuffer::<f32>::new(frames as u64, spec);
    samples.copy_interleaved_ref(buf);
    levels.add_samples(frames as u64);
    levels.push(samples.samples().chunks(channels).map(|f| f.iter().fold(0.0f32, |m, s| m.max(s.abs()))))
}
