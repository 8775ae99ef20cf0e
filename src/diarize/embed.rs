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
/// Windows per wasi-nn call (256 × 160 × 40 floats = 6.6 MB): the LSTM runs its 160 steps once
/// per call, so larger batches make larger, faster matrix products (natively, 256 windows took
/// 12 % less time in one call than in four).
pub const BATCH: usize = 256;
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
///
/// The mel spectrogram is computed once per region and each window's frames are cut from it,
/// scaled by the square of the window's gain to −30 dBFS (a power spectrum scales with the
/// square of the amplitude): half the work of computing each overlapping window on its own,
/// and the same numbers except at a window's first and last two frames, which see the
/// neighbouring audio instead of zero padding.
pub fn embed_regions(net: &mut dyn SpeakerNet, samples: &[f32], regions: &[Region]) -> Result<Vec<Window>, Error> {
    let mut mel = Mel40::default();
    // (start, end, gain², frames of its region's mel from `first`)
    let mut jobs: Vec<(usize, usize, f32, usize, usize)> = Vec::new();
    let mut region_mels: Vec<Vec<f32>> = Vec::new();
    for r in regions {
        let spans: Vec<(usize, usize)> = window_spans(std::slice::from_ref(r))
            .into_iter()
            .filter(|&(a, b)| rms(&samples[a..b.min(samples.len())]) >= SILENT_RMS)
            .collect();
        if spans.is_empty() {
            continue;
        }
        let mut m = Vec::new();
        mel.compute_into(&samples[r.start..r.end.min(samples.len())], &mut m);
        for (a, b) in spans {
            let gain = TARGET_RMS / rms(&samples[a..b.min(samples.len())]).max(1e-9);
            jobs.push((a, b, gain * gain, region_mels.len(), (a - r.start) / HOP_LENGTH));
        }
        region_mels.push(m);
    }
    let mut windows = Vec::with_capacity(jobs.len());
    for batch in jobs.chunks(BATCH) {
        // All windows of a call have one length: the longest, shorter ones zero-padded at the
        // end (as resemblyzer pads its last partial).
        let frames = batch.iter().map(|&(a, b, ..)| mel40::n_frames(b - a)).max().unwrap_or(0).min(WINDOW_FRAMES);
        let mut mels = Vec::with_capacity(batch.len() * frames * mel40::N_MELS);
        for &(a, b, gain2, region, first) in batch {
            let m = &region_mels[region];
            let n = mel40::n_frames(b - a).min(frames).min(m.len() / mel40::N_MELS - first);
            mels.extend(m[first * mel40::N_MELS..(first + n) * mel40::N_MELS].iter().map(|v| v * gain2));
            mels.resize(mels.len() + (frames - n) * mel40::N_MELS, 0.0);
        }
        let out = net.embed(&mels, batch.len())?;
        if out.len() != batch.len() * DIM {
            return Err(Error::Inference(format!("speaker encoder returned {} values for {} windows", out.len(), batch.len())));
        }
        for (&(start, end, ..), e) in batch.iter().zip(out.chunks(DIM)) {
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

    /// Keeps what it was sent.
    struct Spy(Vec<f32>);
    impl SpeakerNet for Spy {
        fn embed(&mut self, mels: &[f32], n: usize) -> Result<Vec<f32>, Error> {
            self.0.extend_from_slice(mels);
            Ok(vec![1.0; n * DIM])
        }
    }

    #[test]
    fn windows_cut_from_the_region_mel_equal_their_own_mel_scaled_to_30_dbfs() {
        let s = SAMPLE_RATE;
        let samples: Vec<f32> = (0..4 * s).map(|i| 0.3 * ((i as f32 * 0.05).sin() + (i as f32 * 0.0131).sin()) * (i % 997) as f32 / 997.0).collect();
        let mut spy = Spy(Vec::new());
        let w = embed_regions(&mut spy, &samples, &[Region { start: 0, end: 4 * s }]).unwrap();
        let (a, b) = (w[1].start, w[1].end);
        let x: Vec<f32> = samples[a..b].iter().map(|v| v * TARGET_RMS / rms(&samples[a..b])).collect();
        let mut own = Vec::new();
        Mel40::default().compute_into(&x, &mut own);
        let sent = &spy.0[WINDOW_FRAMES * mel40::N_MELS..2 * WINDOW_FRAMES * mel40::N_MELS];
        for f in 2..WINDOW_FRAMES - 2 {
            for m in 0..mel40::N_MELS {
                let (g, o) = (sent[f * mel40::N_MELS + m], own[f * mel40::N_MELS + m]);
                assert!((g - o).abs() <= 1e-3 * o.abs().max(1e-6), "frame {f} band {m}: {g} vs {o}");
            }
        }
    }

    #[test]
    fn batches_have_one_shape_and_silence_is_skipped() {
        let s = SAMPLE_RATE;
        let samples: Vec<f32> = (0..250 * s).map(|i| if i < 240 * s { ((i % 50) as f32 / 50.0) - 0.5 } else { 0.0 }).collect();
        let mut net = Fake(Vec::new());
        let w = embed_regions(&mut net, &samples, &[Region { start: 0, end: 250 * s }]).unwrap();
        assert!(w.iter().all(|w| w.start < 240 * s), "silent windows are left out");
        assert!(net.0.iter().all(|&l| l == WINDOW_FRAMES * mel40::N_MELS), "{:?}", net.0);
        assert!(w.len() > BATCH, "more than one call");
        assert_eq!(mean_embedding(w.iter().map(|w| w.embedding.as_slice())).unwrap()[0], 1.0);
    }
}
