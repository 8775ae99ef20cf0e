//! Whisper's log-mel spectrogram, computed on one thread (wasip2 has no threads).
//!
//! Stage: `Pcm16k.samples` (mono, 16 kHz, [-1, 1]) → [`LogMel`] (`[n_mels, n_frames]`, row-major)
//! → 30 s windows of `[n_mels, 3000]` for the encoder.
//!
//! # Which reference this matches
//! We match **faster-whisper 1.2.1 `FeatureExtractor.__call__`** with its defaults
//! (`faster_whisper/feature_extractor.py`), which is how `WhisperModel.transcribe` calls it
//! (`features = self.feature_extractor(audio)`):
//!
//! 1. append `padding = 160` zero samples (one hop) to the audio;
//! 2. STFT: `n_fft = 400`, `hop = 160`, periodic Hann window (`np.hanning(401)[:-1]`),
//!    `center=True` with REFLECT padding of `n_fft / 2 = 200` samples on both sides
//!    (as `torch.stft(center=True, pad_mode="reflect")`);
//! 3. power `|X|²`, dropping the last STFT frame (`stft[..., :-1]`);
//! 4. Slaney mel filterbank (librosa `htk=False, norm="slaney"`, 0..8000 Hz);
//! 5. `log10(max(x, 1e-10))`, clamp to `global_max - 8` over the WHOLE spectrogram,
//!    then `(x + 4) / 4`.
//!
//! So for `n` input samples there are `n / 160 + 1` frames (integer division); frame `t` is
//! centred on sample `t * 160`. faster-whisper then uses `content_frames = n_frames - 1`
//! (= `n / 160`) and cuts windows `features[:, seek : seek + min(3000, content_frames - seek)]`,
//! zero-padded to 3000 frames with `pad_or_trim` — i.e. padded with **0.0 in the normalized
//! domain** (log10 = −4), not with the log-mel of silence. [`LogMel::window`] does exactly that.
//!
//! ## Difference from openai-whisper
//! openai-whisper (`transcribe.py`) calls `log_mel_spectrogram(audio, padding=N_SAMPLES)`:
//! it appends 30 s of zeros instead of 160 samples. Frames `0..content_frames` are identical in
//! both (their STFT windows end at most 40 samples past the audio, inside the zero tail both
//! add; checked with numpy), so the windows the model sees differ only if the global max fell
//! in a frame after the content (the loudest moment in the last ~10 ms of the audio), a rare
//! case where the clamp floor shifts slightly.
//! Window cutting and the 0.0 padding are the same in both.
//! (faster-whisper's *batched* pipeline computes one spectrogram per ≤30 s chunk and so clamps
//! per chunk; we do not model that here.)
//!
//! # Performance and memory
//! One realfft plan of size 400 and all buffers are made once per [`MelExtractor`]; nothing is
//! allocated per frame. The filterbank is stored sparsely (each mel filter touches only a few
//! FFT bins) and built once per process per `n_mels` for 80 and 128 (`OnceLock`, `mel/filters.rs`).
//! 30 s of audio take ≈ 5 ms natively (release, one core). [`LogMel`] stores the whole
//! spectrogram (80 mels: 115 MB per hour of audio); [`MelWindows`] yields the same windows
//! bit for bit from the samples, storing only one window, for twice the (small) mel work.

mod filters;

pub use filters::{MelFilters, PowerMel};

/// Whisper's input sample rate in Hz (`SAMPLE_RATE` in openai-whisper `audio.py`).
pub const SAMPLE_RATE: usize = 16_000;
/// FFT size = window length: 400 samples = 25 ms (`N_FFT`).
pub const N_FFT: usize = 400;
/// Hop between frames: 160 samples = 10 ms (`HOP_LENGTH`).
pub const HOP_LENGTH: usize = 160;
/// Number of rfft bins: `N_FFT / 2 + 1 = 201`.
pub const N_BINS: usize = N_FFT / 2 + 1;
/// Seconds per encoder window (`CHUNK_LENGTH`).
pub const CHUNK_LENGTH_S: usize = 30;
/// Samples per encoder window: 30 s × 16 kHz = 480 000 (`N_SAMPLES`).
pub const N_SAMPLES: usize = CHUNK_LENGTH_S * SAMPLE_RATE;
/// Frames per encoder window: 480 000 / 160 = 3000 (`N_FRAMES`, faster-whisper `nb_max_frames`).
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Frames per second: 16 000 / 160 = 100 (one frame = 10 ms).
pub const FRAMES_PER_SECOND: usize = SAMPLE_RATE / HOP_LENGTH;
/// Zero samples appended before the STFT (faster-whisper `FeatureExtractor.__call__(padding=160)`).
pub const TAIL_PADDING: usize = HOP_LENGTH;
/// Floor before the log (`np.clip(mel_spec, a_min=1e-10)`).
const LOG_FLOOR: f32 = 1e-10;
/// Dynamic range kept below the global maximum, in log10 units (= 80 dB).
const DYNAMIC_RANGE: f32 = 8.0;

/// A whole-input normalized log-mel spectrogram.
///
/// Layout: `data[m * n_frames + t]` for mel `m < n_mels`, frame `t < n_frames`
/// (= numpy's `[n_mels, n_frames]` C order, the encoder's layout).
#[derive(Clone, Debug, PartialEq)]
pub struct LogMel {
    n_mels: usize,
    n_frames: usize,
    /// Global maximum of `log10(max(mel, 1e-10))` before clamping and normalization.
    max_log10: f32,
    data: Vec<f32>,
}

impl LogMel {
    /// Number of mel bands (80 for all Whisper models but large-v3, which uses 128).
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of frames, `n_samples / 160 + 1` (faster-whisper's `features.shape[-1]`).
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// Frames that carry audio: `n_frames - 1` = `n_samples / 160`
    /// (faster-whisper `content_frames = features.shape[-1] - 1`).
    pub fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(1)
    }

    /// Seconds of audio: `content_frames / FRAMES_PER_SECOND` (the transcript's `duration`).
    pub fn seconds(&self) -> f32 {
        self.content_frames() as f32 / FRAMES_PER_SECOND as f32
    }

    /// Global max of the log10 mel power before clamping; the normalized maximum is
    /// `(max_log10 + 4) / 4`.
    pub fn max_log10(&self) -> f32 {
        self.max_log10
    }

    /// All values, `[n_mels, n_frames]` row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// One mel band over all frames.
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_frames..(mel + 1) * self.n_frames]
    }

    /// Value at mel `mel`, frame `frame`.
    pub fn get(&self, mel: usize, frame: usize) -> f32 {
        self.data[mel * self.n_frames + frame]
    }

    /// The encoder input for the 30 s window starting at frame `seek`, as faster-whisper cuts it:
    /// frames `seek .. seek + min(3000, content_frames - seek)`, then zero-padded (0.0) to 3000.
    /// Returns `[n_mels, 3000]` row-major. A `seek` at or past the end gives all zeros.
    pub fn window(&self, seek: usize) -> Vec<f32> {
        let len = N_FRAMES.min(self.content_frames().saturating_sub(seek));
        self.window_frames(seek, len)
    }

    /// Like [`LogMel::window`] but with an explicit number of frames to keep
    /// (`segment_size`, e.g. when clipping to a timestamp range): frames
    /// `start .. start + min(n_keep, 3000)` (clipped to `n_frames`), zero-padded to 3000.
    pub fn window_frames(&self, start: usize, n_keep: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.n_mels * N_FRAMES];
        self.write_window(start, n_keep, &mut out);
        out
    }

    /// Allocation-free [`LogMel::window_frames`]: writes `[n_mels, 3000]` into `out`
    /// (every element is overwritten). Returns the number of real (non-padding) frames.
    ///
    /// # Panics
    /// If `out.len() != n_mels * 3000`.
    pub fn write_window(&self, start: usize, n_keep: usize, out: &mut [f32]) -> usize {
        assert_eq!(
            out.len(),
            self.n_mels * N_FRAMES,
            "window buffer must be n_mels * 3000"
        );
        let end = start
            .saturating_add(n_keep.min(N_FRAMES))
            .min(self.n_frames);
        let len = end.saturating_sub(start);
        for (m, dst) in out.chunks_exact_mut(N_FRAMES).enumerate() {
            if len > 0 {
                dst[..len].copy_from_slice(&self.row(m)[start..end]);
            }
            dst[len..].fill(0.0);
        }
        len
    }
}

/// Reusable log-mel calculator: one FFT plan and scratch buffers, no per-frame allocation.
pub struct MelExtractor {
    frames: PowerMel,
    mel: Vec<f32>,
}

impl MelExtractor {
    /// An extractor for `n_mels` bands (80, or 128 for large-v3).
    pub fn new(n_mels: usize) -> Self {
        MelExtractor {
            frames: PowerMel::new(n_mels),
            mel: vec![0.0; n_mels],
        }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.frames.n_mels()
    }

    /// The normalized log-mel of the whole input (see the module docs for the exact semantics).
    pub fn compute(&mut self, samples: &[f32]) -> LogMel {
        let n_mels = self.n_mels();
        let n_frames = n_frames_for(samples.len());
        let mut data = vec![0.0f32; n_mels * n_frames];
        let mut max_log10 = f32::NEG_INFINITY;
        for t in 0..n_frames {
            self.frame_log10(samples, t);
            for (m, &l) in self.mel.iter().enumerate() {
                max_log10 = max_log10.max(l);
                data[m * n_frames + t] = l;
            }
        }
        let floor = max_log10 - DYNAMIC_RANGE;
        data.iter_mut().for_each(|v| *v = normalize(*v, floor));
        LogMel {
            n_mels,
            n_frames,
            max_log10,
            data,
        }
    }

    /// Global max of `log10(max(mel, 1e-10))` over the whole input, without storing anything
    /// (the first pass of [`MelWindows`]).
    pub fn max_log10(&mut self, samples: &[f32]) -> f32 {
        let mut max_log10 = f32::NEG_INFINITY;
        for t in 0..n_frames_for(samples.len()) {
            self.frame_log10(samples, t);
            max_log10 = self.mel.iter().copied().fold(max_log10, f32::max);
        }
        max_log10
    }

    /// Leaves `log10(max(mel, 1e-10))` of frame `t` in `self.mel`.
    fn frame_log10(&mut self, samples: &[f32], t: usize) {
        // Signal y = samples ++ 160 zeros, length `padded_len`; STFT frames over y reflect-padded
        // by 200 on each side: 1 + padded_len / 160 frames, of which the last is dropped.
        // Frame t covers y[t*160 - 200 .. t*160 + 200].
        let padded_len = samples.len() + TAIL_PADDING;
        let start = (t * HOP_LENGTH) as isize - (N_FFT / 2) as isize;
        // Off the ends: reflect at both ends of y, zeros in the 160-sample tail.
        let reflect = |i: isize| samples.get(reflect_index(i, padded_len)).copied().unwrap_or(0.0);
        self.frames.frame(samples, start, reflect, &mut self.mel);
        self.mel
            .iter_mut()
            .for_each(|v| *v = v.max(LOG_FLOOR).log10());
    }
}

/// Frames for `n_samples` of input: `(n_samples + 160) / 160` (see the module docs).
pub fn n_frames_for(n_samples: usize) -> usize {
    (n_samples + TAIL_PADDING) / HOP_LENGTH
}

/// Clamp to `floor = max − 8` and map to Whisper's range: `(max(x, floor) + 4) / 4`.
fn normalize(log10: f32, floor: f32) -> f32 {
    (log10.max(floor) + 4.0) / 4.0
}

/// Whole-input normalized log-mel of 16 kHz mono `samples` with `n_mels` bands, matching
/// faster-whisper's `FeatureExtractor(feature_size=n_mels)(samples)` (see the module docs).
/// `n_frames = samples.len() / 160 + 1`. Allocates an FFT plan: reuse a [`MelExtractor`] for
/// many calls. Memory: `n_mels × n_frames` f32 (80 mels: 32 KB per second, 115 MB per hour);
/// see [`MelWindows`] for long inputs.
pub fn log_mel(samples: &[f32], n_mels: usize) -> LogMel {
    MelExtractor::new(n_mels).compute(samples)
}

/// The same 30 s encoder windows as [`LogMel::window`] (bit-identical values), computed on
/// demand from the samples instead of stored: one pass over the input finds the global max
/// (needed for the clamp), then each window costs its 3000 frames again. Memory is one
/// window instead of the whole spectrogram, for about twice the mel work (≈ 5 ms per 30 s
/// natively), which is small next to the encoder.
pub struct MelWindows<'a> {
    samples: &'a [f32],
    extractor: MelExtractor,
    max_log10: f32,
    n_frames: usize,
}

impl<'a> MelWindows<'a> {
    /// Runs the first pass (global max) over `samples`.
    pub fn new(samples: &'a [f32], n_mels: usize) -> Self {
        let mut extractor = MelExtractor::new(n_mels);
        let max_log10 = extractor.max_log10(samples);
        MelWindows {
            samples,
            extractor,
            max_log10,
            n_frames: n_frames_for(samples.len()),
        }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.extractor.n_mels()
    }

    /// Same as [`LogMel::n_frames`].
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// Same as [`LogMel::content_frames`].
    pub fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(1)
    }

    /// Same as [`LogMel::max_log10`].
    pub fn max_log10(&self) -> f32 {
        self.max_log10
    }

    /// Same as [`LogMel::window`].
    pub fn window(&mut self, seek: usize) -> Vec<f32> {
        let len = N_FRAMES.min(self.content_frames().saturating_sub(seek));
        let mut out = vec![0.0; self.n_mels() * N_FRAMES];
        self.write_window(seek, len, &mut out);
        out
    }

    /// Same as [`LogMel::write_window`].
    pub fn write_window(&mut self, start: usize, n_keep: usize, out: &mut [f32]) -> usize {
        let n_mels = self.n_mels();
        assert_eq!(
            out.len(),
            n_mels * N_FRAMES,
            "window buffer must be n_mels * 3000"
        );
        let end = start
            .saturating_add(n_keep.min(N_FRAMES))
            .min(self.n_frames);
        let len = end.saturating_sub(start);
        let floor = self.max_log10 - DYNAMIC_RANGE;
        for (i, t) in (start..end).enumerate() {
            self.extractor.frame_log10(self.samples, t);
            for (m, &l) in self.extractor.mel.iter().enumerate() {
                out[m * N_FRAMES + i] = normalize(l, floor);
            }
        }
        for row in out.chunks_exact_mut(N_FRAMES) {
            row[len..].fill(0.0);
        }
        len
    }
}

/// numpy `np.pad(mode="reflect")` index for position `i` of a signal of length `len`
/// (reflection without repeating the edge sample, repeated as often as needed).
fn reflect_index(i: isize, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= len as isize { period - m } else { m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from faster-whisper 1.2.1 `FeatureExtractor`, made by
    /// `tests/reference/mel_reference.py` on the signals of [`reference_signal`].
    const REFERENCE_JSON: &str = include_str!("testdata/mel_reference.json");

    /// Max abs difference allowed on the normalized log-mel ((log10 + 4) / 4, so 1e-4 here is
    /// 4e-4 in log10 power, ≈ 0.004 dB). Measured: ≈ 2e-5 (f32 FFT vs numpy's FFT).
    const TOLERANCE: f32 = 1e-4;

    /// The deterministic test signal; `tests/reference/mel_reference.py` builds the same one.
    /// A 32-bit LCG gives noise; sines, a chirp, an amplitude ramp and a stretch of digital
    /// silence exercise the clamp. Computed in f64 and rounded to f32 like numpy's `astype`.
    fn reference_signal(kind: &str, n: usize) -> Vec<f32> {
        let sr = SAMPLE_RATE as f64;
        let mut state: u32 = 12345;
        let mut noise = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f64 / (1u32 << 24) as f64 * 2.0 - 1.0
        };
        let tau = 2.0 * std::f64::consts::PI;
        (0..n)
            .map(|i| {
                let t = i as f64 / sr;
                let x = match kind {
                    "mix" => {
                        let env = if (2.0..2.5).contains(&t) { 0.0 } else { 1.0 };
                        let chirp = (tau * (100.0 * t + 0.5 * 1500.0 * t * t)).sin();
                        let ramp = (t / 3.0).min(1.0);
                        env * (0.3 * (tau * 440.0 * t).sin()
                            + 0.2 * ramp * chirp
                            + 0.05 * (tau * 3000.0 * t).sin()
                            + 0.01 * noise())
                    }
                    "short" => 0.5 * (tau * 1000.0 * t).sin() + 0.1 * noise(),
                    _ => unreachable!(),
                };
                x as f32
            })
            .collect()
    }

    fn reference() -> serde_json::Value {
        serde_json::from_str(REFERENCE_JSON).expect("valid fixture JSON")
    }

    fn f32s(v: &serde_json::Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    #[test]
    fn reflect_index_matches_numpy() {
        // np.pad(np.arange(5), 7, mode="reflect"): wider than the signal, reflected repeatedly.
        let want = [1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3];
        let got: Vec<usize> = (-7..12).map(|i| reflect_index(i, 5)).collect();
        assert_eq!(got, want);
        // np.pad(np.arange(170), 200, mode="reflect"): first and last elements.
        assert_eq!(reflect_index(-200, 170), 138);
        assert_eq!(reflect_index(-169, 170), 169);
        assert_eq!(reflect_index(-168, 170), 168);
        assert_eq!(reflect_index(170 + 199, 170), 31);
        assert_eq!(reflect_index(-3, 1), 0);
    }

    #[test]
    fn filters_match_reference() {
        let r = reference();
        for f in r["filters"].as_array().unwrap() {
            let n_mels = f["n_mels"].as_u64().unwrap() as usize;
            let filters = MelFilters::shared(n_mels);
            let mels = f["mel"].as_array().unwrap();
            let bins = f["bin"].as_array().unwrap();
            let vals = f32s(&f["value"]);
            let mut max_diff = 0.0f32;
            let mut dense_sum = 0.0f64;
            for ((m, k), v) in mels.iter().zip(bins).zip(&vals) {
                let w = filters.weight(m.as_u64().unwrap() as usize, k.as_u64().unwrap() as usize);
                max_diff = max_diff.max((w - v).abs() / v.abs().max(1e-6));
            }
            for m in 0..n_mels {
                for k in 0..N_BINS {
                    dense_sum += filters.weight(m, k) as f64;
                }
            }
            let ref_sum: f64 = vals.iter().map(|&v| v as f64).sum();
            assert!(
                max_diff < 1e-5,
                "n_mels={n_mels}: max relative filter diff {max_diff}"
            );
            assert_eq!(
                vals.len(),
                filters.weights.iter().filter(|&&w| w > 0.0).count()
            );
            assert!(
                (dense_sum - ref_sum).abs() < 1e-5 * ref_sum,
                "{dense_sum} vs {ref_sum}"
            );
        }
    }

    #[test]
    fn log_mel_matches_faster_whisper() {
        let r = reference();
        let mut extractors: Vec<MelExtractor> = Vec::new();
        for case in r["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let n_mels = case["n_mels"].as_u64().unwrap() as usize;
            let n_samples = case["n_samples"].as_u64().unwrap() as usize;
            let samples = reference_signal(case["signal"].as_str().unwrap(), n_samples);
            let ext = match extractors.iter_mut().find(|e| e.n_mels() == n_mels) {
                Some(e) => e,
                None => {
                    extractors.push(MelExtractor::new(n_mels));
                    extractors.last_mut().unwrap()
                }
            };
            let mel = ext.compute(&samples);
            assert_eq!(mel.n_mels(), n_mels, "{name}");
            assert_eq!(
                mel.n_frames(),
                case["n_frames"].as_u64().unwrap() as usize,
                "{name}"
            );

            // Spot values: whole frames, and every value of a few mel rows at a stride.
            let mut max_diff = 0.0f32;
            let mut count = 0usize;
            for fr in case["frames"].as_array().unwrap() {
                let t = fr["frame"].as_u64().unwrap() as usize;
                for (m, v) in f32s(&fr["values"]).into_iter().enumerate() {
                    max_diff = max_diff.max((mel.get(m, t) - v).abs());
                    count += 1;
                }
            }
            let stride = case["row_stride"].as_u64().unwrap() as usize;
            for row in case["rows"].as_array().unwrap() {
                let m = row["mel"].as_u64().unwrap() as usize;
                for (i, v) in f32s(&row["values"]).into_iter().enumerate() {
                    max_diff = max_diff.max((mel.get(m, i * stride) - v).abs());
                    count += 1;
                }
            }
            assert!(count >= n_mels, "{name}: fixture too small");
            assert!(
                max_diff <= TOLERANCE,
                "{name}: max abs diff {max_diff} > {TOLERANCE}"
            );

            // Whole-spectrogram statistics.
            let data = mel.data();
            let mean = data.iter().map(|&v| v as f64).sum::<f64>() / data.len() as f64;
            let min = data.iter().copied().fold(f32::INFINITY, f32::min);
            let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let ref_mean = case["mean"].as_f64().unwrap();
            assert!(
                (mean - ref_mean).abs() < 1e-4,
                "{name}: mean {mean} vs {ref_mean}"
            );
            assert!(
                (min - case["min"].as_f64().unwrap() as f32).abs() <= TOLERANCE,
                "{name}"
            );
            assert!(
                (max - case["max"].as_f64().unwrap() as f32).abs() <= TOLERANCE,
                "{name}"
            );
            let ref_max_log = case["max_log10"].as_f64().unwrap() as f32;
            assert!(
                (mel.max_log10() - ref_max_log).abs() <= 4.0 * TOLERANCE,
                "{name}"
            );
            eprintln!("{name}: n_mels={n_mels} frames={} max|diff|={max_diff:.2e} over {count} values, mean diff {:.2e}",
                mel.n_frames(), (mean - ref_mean).abs());
        }
    }

    #[test]
    fn shape_and_range() {
        for n in [0usize, 1, 10, 159, 160, 161, 16_000, 16_123] {
            let samples = reference_signal("short", n);
            let mel = log_mel(&samples, 80);
            assert_eq!(mel.n_frames(), n / HOP_LENGTH + 1, "n={n}");
            assert_eq!(mel.content_frames(), n / HOP_LENGTH);
            assert_eq!(mel.data().len(), 80 * mel.n_frames());
            let max = mel.data().iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let min = mel.data().iter().copied().fold(f32::INFINITY, f32::min);
            assert!(mel.data().iter().all(|v| v.is_finite()));
            assert!((max - (mel.max_log10() + 4.0) / 4.0).abs() < 1e-6, "n={n}");
            assert!(
                min >= max - 2.0 - 1e-6,
                "clamp to max-8 in log10 = max-2 normalized"
            );
            if n >= 160 {
                assert!(
                    (-1.5..=1.5).contains(&min) && (-1.5..=1.5).contains(&max),
                    "{min} {max}"
                );
            }
        }
        // Digital silence: everything at the 1e-10 floor → (−10 + 4) / 4 = −1.5.
        let mel = log_mel(&[0.0; 4000], 128);
        assert_eq!(mel.n_mels(), 128);
        assert!(mel.data().iter().all(|&v| v == -1.5));
    }

    #[test]
    fn window_follows_faster_whisper_segmenting() {
        let samples = reference_signal("short", 5 * SAMPLE_RATE + 77); // 5.0048 s
        let mel = log_mel(&samples, 80);
        assert_eq!(mel.content_frames(), 500);
        let w = mel.window(0);
        assert_eq!(w.len(), 80 * N_FRAMES);
        for m in [0, 40, 79] {
            let row = &w[m * N_FRAMES..(m + 1) * N_FRAMES];
            assert_eq!(&row[..500], &mel.row(m)[..500]);
            assert!(
                row[500..].iter().all(|&v| v == 0.0),
                "padding is 0.0 in the normalized domain"
            );
        }
        let w = mel.window(450);
        assert_eq!(&w[..50], &mel.row(0)[450..500]);
        assert!(w[50..N_FRAMES].iter().all(|&v| v == 0.0));
        assert!(mel.window(10_000).iter().all(|&v| v == 0.0));
        let mut buf = vec![1.0; 80 * N_FRAMES];
        assert_eq!(
            mel.write_window(495, 3000, &mut buf),
            6,
            "explicit length may include the last frame"
        );
        assert_eq!(buf[5], mel.get(0, 500));
    }

    #[test]
    fn long_input_windows_are_contiguous() {
        let samples = reference_signal("mix", 65 * SAMPLE_RATE);
        let mel = log_mel(&samples, 80);
        assert_eq!(mel.content_frames(), 6500);
        let w1 = mel.window(3000);
        assert_eq!(&w1[..N_FRAMES], &mel.row(0)[3000..6000]);
        let w2 = mel.window(6000);
        assert_eq!(&w2[N_FRAMES..N_FRAMES + 500], &mel.row(1)[6000..6500]);
        assert!(w2[N_FRAMES + 500..2 * N_FRAMES].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn mel_windows_equal_stored_windows() {
        let samples = reference_signal("mix", 35 * SAMPLE_RATE + 999);
        let mel = log_mel(&samples, 80);
        let mut lazy = MelWindows::new(&samples, 80);
        assert_eq!(lazy.n_frames(), mel.n_frames());
        assert_eq!(lazy.content_frames(), mel.content_frames());
        assert_eq!(lazy.max_log10(), mel.max_log10());
        for seek in [0, 1234, 3000, 3500, 3506, 9999] {
            assert!(lazy.window(seek) == mel.window(seek), "seek {seek}");
        }
        let mut a = vec![0.0; 80 * N_FRAMES];
        let mut b = vec![0.0; 80 * N_FRAMES];
        assert_eq!(
            lazy.write_window(3400, 200, &mut a),
            mel.write_window(3400, 200, &mut b)
        );
        assert!(a == b);
    }

    /// Speed check (release): `cargo test --release -p whisper-component --lib mel::tests::speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn speed() {
        let samples = reference_signal("mix", N_SAMPLES);
        let mut ext = MelExtractor::new(80);
        let _ = ext.compute(&samples);
        let runs = 20;
        let t0 = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(ext.compute(std::hint::black_box(&samples)));
        }
        let per = t0.elapsed() / runs;
        eprintln!("log-mel of 30 s (80 mels): {per:?} per call");
        let t0 = std::time::Instant::now();
        std::hint::black_box(log_mel(&samples, 128));
        eprintln!("log-mel of 30 s (128 mels, fresh plan): {:?}", t0.elapsed());
        let t0 = std::time::Instant::now();
        let mut lazy = MelWindows::new(&samples, 80);
        std::hint::black_box(lazy.window(0));
        eprintln!(
            "MelWindows of 30 s (max pass + one window): {:?}",
            t0.elapsed()
        );
    }
}
