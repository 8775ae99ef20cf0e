//! The speaker encoder's front end: resemblyzer 0.1.4 `audio.wav_to_mel_spectrogram`, which is
//! `librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)`:
//! centred frames (200 zeros of padding on each side, librosa ≥ 0.10's `pad_mode="constant"`),
//! a periodic Hann window, the power spectrum (`|X|²`, not log) and 40 Slaney mel bands
//! (`mel::MelFilters`, the same filterbank as Whisper's at 40 bands).
//!
//! Frames: `1 + n_samples / 160` (25 ms windows every 10 ms), row-major `[frames, 40]` as the
//! graph takes them.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::mel::{MelFilters, HOP_LENGTH, N_BINS, N_FFT};

/// Mel bands (resemblyzer `hparams.mel_n_channels`).
pub const N_MELS: usize = 40;

pub struct Mel40 {
    filters: MelFilters,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl Default for Mel40 {
    fn default() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        Mel40 {
            filters: MelFilters::new(N_MELS),
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            power: vec![0.0; N_BINS],
        }
    }
}

/// Frames for `n_samples` (librosa with `center=True`).
pub fn n_frames(n_samples: usize) -> usize {
    1 + n_samples / HOP_LENGTH
}

impl Mel40 {
    /// Appends the `[n_frames(samples.len()), 40]` mel power spectrogram of `samples` to `out`.
    pub fn compute_into(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        let half = (N_FFT / 2) as isize;
        for t in 0..n_frames(samples.len()) {
            let start = (t * HOP_LENGTH) as isize - half;
            for (j, (f, &w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
                let i = start + j as isize;
                let x = if i < 0 { 0.0 } else { samples.get(i as usize).copied().unwrap_or(0.0) };
                *f = x * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffer sizes come from the plan");
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            let at = out.len();
            out.resize(at + N_MELS, 0.0);
            self.filters.apply(&self.power, &mut out[at..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from librosa 0.10's formula written out in numpy (models/tests/test_speaker.py
    /// `mel40`) for a 1 kHz sine of amplitude 0.5 over 0.1 s: bands 12 and 13 of a middle frame and
    /// of the first and last (half of their window is padding).
    #[test]
    fn sine_matches_librosa() {
        let samples: Vec<f32> =
            (0..1600).map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin()).collect();
        let mut out = Vec::new();
        Mel40::default().compute_into(&samples, &mut out);
        assert_eq!(n_frames(1600), 11);
        assert_eq!(out.len(), 11 * N_MELS);
        let close = |got: f32, want: f32| assert!((got - want).abs() <= 1e-3 * want, "{got} vs {want}");
        for (frame, want) in [(5, [22.105158, 26.129992]), (0, [9.712372, 10.034645]), (10, [9.712372, 10.034645])] {
            let row = &out[frame * N_MELS..(frame + 1) * N_MELS];
            close(row[12], want[0]);
            close(row[13], want[1]);
        }
        assert!(out[5 * N_MELS..5 * N_MELS + 11].iter().all(|&v| v < 1e-6), "no energy below the sine's bands");
    }
}
