//! Speaker embeddings over sliding windows of speech.
//!
//! Resemblyzer embeds "partial utterances" of 160 mel frames (1.6 s); here each speech region is
//! covered by such windows every [`STEP_FRAMES`] frames (the last one flush with the region's
//! end), a region shorter than a window by one window of its own length (at least
//! [`MIN_WINDOW_S`]). Each window's samples are scaled to -30 dBFS first, as resemblyzer's
//! `preprocess_wav` normalises an utterance (`audio_norm_target_dBFS`): the encoder's input is
//! a power spectrogram, not a log, so loudness would otherwise change the embedding.
//! Windows go to the network [`BATCH`] at a time.

use crate::error::Error;
use crate::mel::{HOP_LENGTH, SAMPLE_RATE};
use crate::nn::SpeakerNet;
use crate::vad::Region;

use super::mel40::{self, Mel40};

/// Frames per window (resemblyzer `partials_n_frames`, 1.6 s).
pub const WINDOW_FRAMES: usize = 160;
/// Frames between window starts (0.8 s: half a window).
pub const STEP_FRAMES: usize = 80;
/// Regions shorter than this get no window of their own (their words take the nearest speaker).
pub const MIN_WINDOW_S: f32 = 0.5;
/// Windows per wasi-nn call (64 × 160 × 40 floats = 1.6 MB).
pub const BATCH: usize = 64;
/// Embedding width (resemblyzer `model_embedding_size`).
pub const DIM: usize = 256;
/// -30 dBFS as RMS of samples in [-1, 1].
const TARGET_RMS: f32 = 0.031_622_775;
/// Windows quieter than this (-60 dBFS) are silence, not a voice.
const SILENT_RMS: f32 = 0.001;

/// One window: samples `start..end` of the audio and its embedding.
#[derive(Debug, Clone)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub embedding: Vec<f32>,
}

impl Window {
    pub fn center_s(&self) -> f32 {
        (self.start + self.end) as f32 / 2.0 / SAMPLE_RATE as f32
    }
}

/// Sample ranges of the windows over `regions`.
pub fn window_spans(regions: &[Region]) -> Vec<(usize, usize)> {
    let (len, step) = ((WINDOW_FRAMES - 1) * HOP_LENGTH, STEP_FRAMES * HOP_LENGTH);
    let min = (MIN_WINDOW_S * SAMPLE_RATE as f32) as usize;
    let mut spans = Vec::new();
    for r in regions {
        let n = r.end.saturating_sub(r.start);
        if n < min {
            continue;
        }
        if n <= len {
            spans.push((r.start, r.end));
            continue;
        }
        let mut s = r.start;
        while s + len < r.end {
            spans.push((s, s + len));
            s += step;
        }
        spans.push((r.end - len, r.end));
    }
    spans
}

/// Embeds every window of `samples` over `regions` (silent windows are left out).
pub fn embed_regions(net: &mut dyn SpeakerNet, samples: &[f32], regions: &[Region]) -> Result<Vec<Window>, Error> {
    let spans: Vec<(usize, usize)> = window_spans(regions)
        .into_iter()
        .filter(|&(a, b)| rms(&samples[a..b.min(samples.len())]) >= SILENT_RMS)
        .collect();
    let mut windows = Vec::with_capacity(spans.len());
    let mut mel = Mel40::default();
    let mut scaled = Vec::new();
    for batch in spans.chunks(BATCH) {
        // All windows of a call have one length: the longest, shorter ones zero-padded at the
        // end (as resemblyzer pads its last partial).
        let frames = batch.iter().map(|&(a, b)| mel40::n_frames(b - a)).max().unwrap_or(0).min(WINDOW_FRAMES);
        let mut mels = Vec::with_capacity(batch.len() * frames * mel40::N_MELS);
        for &(a, b) in batch {
            let x = &samples[a..b.min(samples.len())];
            let gain = TARGET_RMS / rms(x).max(1e-9);
            scaled.clear();
            scaled.extend(x.iter().map(|v| v * gain));
            scaled.resize((frames - 1) * HOP_LENGTH, 0.0);
            let before = mels.len();
            mel.compute_into(&scaled, &mut mels);
            mels.truncate(before + frames * mel40::N_MELS);
        }
        let out = net.embed(&mels, batch.len())?;
        if out.len() != batch.len() * DIM {
            return Err(Error::Inference(format!("speaker encoder returned {} values for {} windows", out.len(), batch.len())));
        }
        for (&(start, end), e) in batch.iter().zip(out.chunks(DIM)) {
            windows.push(Window { start, end, embedding: e.to_vec() });
        }
    }
    Ok(windows)
}

/// The L2-normalised mean of embeddings (a speaker's voice from several windows).
pub fn mean_embedding<'a>(embeddings: impl Iterator<Item = &'a [f32]>) -> Option<Vec<f32>> {
    let mut sum = vec![0.0f32; DIM];
    let mut n = 0;
    for e in embeddings {
        sum.iter_mut().zip(e).for_each(|(s, v)| *s += v);
        n += 1;
    }
    let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
    (n > 0 && norm > 0.0).then(|| sum.iter().map(|v| v / norm).collect())
}

fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_each_region_and_skip_short_ones() {
        let s = SAMPLE_RATE;
        let len = 159 * 160;
        let spans = window_spans(&[
            Region { start: 0, end: 4 * s },
            Region { start: 5 * s, end: 5 * s + s / 4 },
            Region { start: 6 * s, end: 7 * s },
        ]);
        // 4 s: starts 0, 0.8, 1.6, 2.4 s (each 1.59 s), then one flush with the end.
        let first: Vec<_> = spans.iter().take_while(|(a, _)| *a < 4 * s).collect();
        assert_eq!(first.len(), 5);
        assert!(first.iter().all(|(a, b)| b - a == len));
        assert_eq!(first.last().unwrap().1, 4 * s);
        // The 0.25 s region has none, the 1 s region one of its own length.
        assert_eq!(spans.last(), Some(&(6 * s, 7 * s)));
        assert_eq!(spans.len(), 6);
    }

    struct Fake(Vec<usize>);
    impl SpeakerNet for Fake {
        fn embed(&mut self, mels: &[f32], n: usize) -> Result<Vec<f32>, Error> {
            self.0.push(mels.len() / n);
            Ok((0..n * DIM).map(|i| (i % DIM == 0) as u8 as f32).collect())
        }
    }

    #[test]
    fn batches_have_one_shape_and_silence_is_skipped() {
        let s = SAMPLE_RATE;
        let samples: Vec<f32> = (0..90 * s).map(|i| if i < 80 * s { ((i % 50) as f32 / 50.0) - 0.5 } else { 0.0 }).collect();
        let mut net = Fake(Vec::new());
        let w = embed_regions(&mut net, &samples, &[Region { start: 0, end: 90 * s }]).unwrap();
        assert!(w.iter().all(|w| w.start < 80 * s), "silent windows are left out");
        assert!(net.0.iter().all(|&l| l == WINDOW_FRAMES * mel40::N_MELS), "{:?}", net.0);
        assert!(w.len() > BATCH, "more than one call");
        assert_eq!(mean_embedding(w.iter().map(|w| w.embedding.as_slice())).unwrap()[0], 1.0);
    }
}
