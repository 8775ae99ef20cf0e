//! Voice activity detection: Silero VAD (the `vad/silero` graph, models/README.md) scores each
//! 32 ms of the audio, the scores become speech regions (`regions`), the regions are glued
//! together and transcribed instead of the whole audio, and the transcript's times are mapped
//! back to the original audio (`map`). This follows faster-whisper 1.2.1's `vad_filter`
//! (`transcribe.py`, `vad.py`), with the same defaults; `params` reads the request options.
//!
//! Why: Whisper invents text on long silence and noise ("Thank you.", "…"); removing what is
//! not speech before decoding avoids it and saves the decoding of the silence.
//!
//! Used when asked for, and by default for audio over [`AUTO_MIN_SECONDS`] on hosts that have
//! the graph (a host without it transcribes such audio whole, as before).

pub mod map;
pub mod params;
pub mod regions;

pub use map::SpeechMap;
pub use params::VadMode;
pub use regions::{speech_regions, Region};

use crate::error::Error;
use crate::nn::VadNet;
use crate::transcribe::Transcript;

pub const SAMPLE_RATE: usize = crate::mel::SAMPLE_RATE;
/// New samples per Silero frame at 16 kHz (32 ms).
pub const FRAME_SAMPLES: usize = 512;
/// Samples of the previous frame the network sees before each frame.
pub const CONTEXT_SAMPLES: usize = 64;
/// Frames per wasi-nn call (1024 × 32 ms = 32.8 s; 2.4 MB of input). Larger blocks change
/// nothing but memory: the LSTM state is carried from block to block.
pub const BLOCK_FRAMES: usize = 1024;
/// Audio longer than this is filtered by default (`vad_filter` not given).
pub const AUTO_MIN_SECONDS: f32 = 30.0;
/// The wasi-nn graph: model directory `vad`, graph `silero`.
pub const GRAPH: &str = "vad/silero";

/// faster-whisper's `VadOptions` (same names, same defaults; times as f64 so `250.5` ms works
/// as it does there).
#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
    /// A frame whose probability reaches this is speech.
    pub threshold: f64,
    /// Below this a frame is silence; in between, it continues what came before
    /// (default `max(threshold − 0.15, 0.01)`).
    pub neg_threshold: Option<f64>,
    /// Speech regions this short or shorter are dropped.
    pub min_speech_duration_ms: f64,
    /// Longer regions are split (at a silence of more than 98 ms if there is one).
    pub max_speech_duration_s: f64,
    /// Silence this long ends a region.
    pub min_silence_duration_ms: f64,
    /// Kept on each side of a region.
    pub speech_pad_ms: f64,
}

impl Default for VadOptions {
    /// faster-whisper 1.2.1's `VadOptions()`, used by its `WhisperModel.transcribe` (its batched
    /// pipeline uses `min_silence_duration_ms=160`, `max_speech_duration_s=30`).
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_duration_ms: 0.0,
            max_speech_duration_s: f64::INFINITY,
            min_silence_duration_ms: 2000.0,
            speech_pad_ms: 400.0,
        }
    }
}

/// The speech probability of each 512-sample frame of `samples` (16 kHz). Like faster-whisper,
/// the audio is padded with zeros to whole frames, always by at least one sample (so a length
/// that is a multiple of 512 gets one more, silent, frame).
pub fn speech_probs(net: &mut dyn VadNet, samples: &[f32]) -> Result<Vec<f32>, Error> {
    let n_frames = samples.len() / FRAME_SAMPLES + 1;
    let width = CONTEXT_SAMPLES + FRAME_SAMPLES;
    let sample = |i: usize| samples.get(i).copied().unwrap_or(0.0);
    let mut probs = Vec::with_capacity(n_frames);
    let mut block = Vec::with_capacity(BLOCK_FRAMES.min(n_frames) * width);
    for first in (0..n_frames).step_by(BLOCK_FRAMES) {
        block.clear();
        for f in first..(first + BLOCK_FRAMES).min(n_frames) {
            let start = f * FRAME_SAMPLES;
            // The previous frame's last 64 samples (zeros before the first frame).
            if f == 0 {
                block.extend(std::iter::repeat_n(0.0, CONTEXT_SAMPLES));
            } else {
                block.extend((start - CONTEXT_SAMPLES..start).map(sample));
            }
            block.extend((start..start + FRAME_SAMPLES).map(sample));
        }
        let p = net.score(&block, first == 0)?;
        if p.len() != block.len() / width {
            return Err(Error::Inference(format!("VAD returned {} probabilities for {} frames", p.len(), block.len() / width)));
        }
        probs.extend(p);
    }
    Ok(probs)
}

/// The speech of `samples` (scored by [`speech_probs`]) glued together, and the map back to
/// the original times.
pub fn keep_speech(probs: &[f32], samples: &[f32], opts: &VadOptions) -> (Vec<f32>, SpeechMap) {
    let regions = speech_regions(probs, samples.len(), opts);
    (SpeechMap::glue(samples, &regions), SpeechMap::new(&regions, samples.len(), opts.speech_pad_ms / 1000.0))
}

/// A transcript of the glued speech, moved to the original audio's times and duration.
pub fn restore_transcript(map: &SpeechMap, t: &mut Transcript) {
    for s in &mut t.segments {
        map.restore(s);
    }
    t.duration = map.original_seconds();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores a frame by its loudness and records what it was sent.
    struct Loudness {
        calls: Vec<(usize, bool)>,
        frames: Vec<Vec<f32>>,
    }

    impl VadNet for Loudness {
        fn score(&mut self, frames: &[f32], restart: bool) -> Result<Vec<f32>, Error> {
            let width = CONTEXT_SAMPLES + FRAME_SAMPLES;
            self.calls.push((frames.len() / width, restart));
            self.frames.extend(frames.chunks(width).map(<[f32]>::to_vec));
            Ok(frames.chunks(width).map(|f| f[CONTEXT_SAMPLES..].iter().fold(0.0f32, |m, x| m.max(x.abs()))).collect())
        }
    }

    #[test]
    fn frames_carry_context_and_blocks_carry_state() {
        let n = BLOCK_FRAMES * FRAME_SAMPLES + 1000;
        let samples: Vec<f32> = (0..n).map(|i| (i % 7) as f32 / 10.0).collect();
        let mut net = Loudness { calls: Vec::new(), frames: Vec::new() };
        let probs = speech_probs(&mut net, &samples).unwrap();
        assert_eq!(probs.len(), n / 512 + 1);
        assert_eq!(net.calls, vec![(BLOCK_FRAMES, true), (2, false)]);
        // Frame 0: 64 zeros then samples 0..512; frame k: samples 512k−64 .. 512k+512.
        assert!(net.frames[0][..64].iter().all(|&x| x == 0.0));
        assert_eq!(&net.frames[0][64..], &samples[..512]);
        let k = BLOCK_FRAMES; // the first frame of the second block still sees its context
        assert_eq!(&net.frames[k][..], &samples[512 * k - 64..512 * k + 512]);
        // The last frame is zero-padded past the end.
        let last = net.frames.last().unwrap();
        assert!(last[64 + 1000 - 512..].iter().all(|&x| x == 0.0));
        // A multiple of 512 still gets one more, silent, frame (as faster-whisper pads).
        assert_eq!(speech_probs(&mut net, &vec![0.5; 1024]).unwrap(), vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn silence_between_speech_is_removed_and_times_map_back() {
        // 3 s loud, 10 s silent, 3 s loud (the fake scores loud frames 0.9).
        let s = SAMPLE_RATE;
        let mut samples = vec![0.9f32; 3 * s];
        samples.extend(vec![0.0; 10 * s]);
        samples.extend(vec![0.9; 3 * s]);
        let mut net = Loudness { calls: Vec::new(), frames: Vec::new() };
        let (glued, map) = keep_speech(&speech_probs(&mut net, &samples).unwrap(), &samples, &VadOptions::default());
        // Each part plus 0.4 s of pad on each side that has silence.
        assert!((map.kept_seconds() - 6.8).abs() < 0.04, "{}", map.kept_seconds());
        assert_eq!(glued.len() as f32 / s as f32, map.kept_seconds());
        assert_eq!(map.original_seconds(), 16.0);
        // Nothing loud: nothing kept.
        let silence = vec![0.0; 5 * s];
        let (glued, map) = keep_speech(&speech_probs(&mut net, &silence).unwrap(), &silence, &VadOptions::default());
        assert!(glued.is_empty() && map.kept_seconds() == 0.0);
    }
}
