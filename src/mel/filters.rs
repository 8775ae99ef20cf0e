//! The frame stage shared by every mel front end: the Slaney filterbank ([`MelFilters`], stored
//! sparsely) and one STFT frame to mel power ([`PowerMel`]). Whisper's log-mel (`mel.rs`) and the
//! speaker encoder's 40-band mel (`diarize/mel40.rs`) differ only in padding and what follows.

use std::sync::{Arc, OnceLock};

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::{N_BINS, N_FFT, SAMPLE_RATE};

/// A Slaney mel filterbank stored sparsely: filter `m` has weights `weights[offsets[m]..offsets[m+1]]`
/// on FFT bins `first_bin[m] ..`.
#[derive(Debug)]
pub struct MelFilters {
    n_mels: usize,
    first_bin: Vec<usize>,
    offsets: Vec<usize>,
    pub(super) weights: Vec<f32>, // read by mel.rs's filterbank test
}

impl MelFilters {
    /// Builds the filterbank for `n_mels` bands over `N_BINS` = 201 bins of a 400-point FFT at
    /// 16 kHz, 0..8000 Hz, like librosa `filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
    /// norm="slaney")` and faster-whisper `get_mel_filters` (computed in f64, stored as f32).
    pub fn new(n_mels: usize) -> Self {
        assert!(n_mels > 0, "n_mels must be > 0");
        // Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above it
        // (a factor 6.4 per 27 mels).
        const F_SP: f64 = 200.0 / 3.0;
        const MIN_LOG_HZ: f64 = 1000.0;
        const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP; // 15
        let logstep = 6.4f64.ln() / 27.0;
        let hz_to_mel = |hz: f64| {
            if hz >= MIN_LOG_HZ {
                MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep
            } else {
                hz / F_SP
            }
        };
        let mel_to_hz = |mel: f64| {
            if mel >= MIN_LOG_MEL {
                MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp()
            } else {
                F_SP * mel
            }
        };
        let max_mel = hz_to_mel(SAMPLE_RATE as f64 / 2.0); // 45.245640471924965
                                                           // n_mels + 2 band edges, evenly spaced in mel (np.linspace).
        let step = max_mel / (n_mels + 1) as f64;
        let edges_hz: Vec<f64> = (0..n_mels + 2)
            .map(|i| {
                if i == n_mels + 1 {
                    max_mel
                } else {
                    i as f64 * step
                }
            })
            .map(mel_to_hz)
            .collect();
        let bin_hz = |k: usize| k as f64 * SAMPLE_RATE as f64 / N_FFT as f64; // rfftfreq

        let mut first_bin = Vec::with_capacity(n_mels);
        let mut offsets = Vec::with_capacity(n_mels + 1);
        let mut weights = Vec::new();
        offsets.push(0);
        for m in 0..n_mels {
            let (lo, mid, hi) = (edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]);
            let enorm = 2.0 / (hi - lo); // Slaney: constant energy per channel
            let row: Vec<f64> = (0..N_BINS)
                .map(|k| {
                    let f = bin_hz(k);
                    let lower = (f - lo) / (mid - lo);
                    let upper = (hi - f) / (hi - mid);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect();
            let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
            first_bin.push(first);
            weights.extend(row[first..last].iter().map(|&w| w as f32));
            offsets.push(weights.len());
        }
        MelFilters {
            n_mels,
            first_bin,
            offsets,
            weights,
        }
    }

    /// The shared filterbank for `n_mels` (cached for 80 and 128, built on demand otherwise).
    pub fn shared(n_mels: usize) -> Arc<MelFilters> {
        static MEL_80: OnceLock<Arc<MelFilters>> = OnceLock::new();
        static MEL_128: OnceLock<Arc<MelFilters>> = OnceLock::new();
        match n_mels {
            80 => MEL_80.get_or_init(|| Arc::new(MelFilters::new(80))).clone(),
            128 => MEL_128
                .get_or_init(|| Arc::new(MelFilters::new(128)))
                .clone(),
            n => Arc::new(MelFilters::new(n)),
        }
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Dense weight of filter `mel` on FFT bin `bin` (0 outside its support).
    pub fn weight(&self, mel: usize, bin: usize) -> f32 {
        let first = self.first_bin[mel];
        let w = &self.weights[self.offsets[mel]..self.offsets[mel + 1]];
        bin.checked_sub(first)
            .and_then(|i| w.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// `out[m] = Σ_k W[m, k] · power[k]`.
    pub(crate) fn apply(&self, power: &[f32], out: &mut [f32]) {
        for (m, o) in out.iter_mut().enumerate() {
            let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
            let p = &power[self.first_bin[m]..self.first_bin[m] + w.len()];
            *o = w.iter().zip(p).map(|(a, b)| a * b).sum();
        }
    }
}

/// One STFT frame to mel power, shared by Whisper's log-mel and the speaker encoder's mel40:
/// a 400-point periodic Hann window, realfft, `|X|²`, the sparse Slaney filterbank. One plan and
/// all buffers are made once; nothing is allocated per frame.
pub struct PowerMel {
    filters: Arc<MelFilters>,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl PowerMel {
    pub fn new(n_mels: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        // Periodic Hann: 0.5 − 0.5·cos(2πn/N), n < N (np.hanning(N + 1)[:-1]).
        let window = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        PowerMel {
            filters: MelFilters::shared(n_mels),
            window,
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            power: vec![0.0; N_BINS],
        }
    }

    pub fn n_mels(&self) -> usize {
        self.filters.n_mels
    }

    /// Writes the `n_mels` mel powers of the frame `samples[start .. start + 400]` to `out`;
    /// where the frame runs off either end, sample `i` is `outside(i)` (the caller's padding).
    pub fn frame(&mut self, samples: &[f32], start: isize, outside: impl Fn(isize) -> f32, out: &mut [f32]) {
        if start >= 0 && start as usize + N_FFT <= samples.len() {
            let s = &samples[start as usize..start as usize + N_FFT];
            for ((f, &x), &w) in self.frame.iter_mut().zip(s).zip(&self.window) {
                *f = x * w;
            }
        } else {
            for (j, (f, &w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
                let i = start + j as isize;
                let x = if i >= 0 && (i as usize) < samples.len() { samples[i as usize] } else { outside(i) };
                *f = x * w;
            }
        }
        self.fft
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
            .expect("buffer sizes come from the plan");
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        self.filters.apply(&self.power, out);
    }
}
