//! The speaker encoder's front end: resemblyzer 0.1.4 `audio.wav_to_mel_spectrogram`, which is
//! `librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)`:
//! centred frames (200 zeros of padding on each side, librosa ≥ 0.10's `pad_mode="constant"`),
//! a periodic Hann window, the power spectrum (`|X|²`, not log) and 40 Slaney mel bands
//! (`mel::PowerMel`: the same frames and filterbank as Whisper's, at 40 bands).
//!
//! Frames: `1 + n_samples / 160` (25 ms windows every 10 ms), row-major `[frames, 40]` as the
//! graph takes them.

use crate::mel::{PowerMel, HOP_LENGTH, N_FFT};

/// Mel bands (resemblyzer `hparams.mel_n_channels`).
pub const N_MELS: usize = 40;

pub struct Mel40(PowerMel);

impl Default for Mel40 {
    fn default() -> Self {
        Mel40(PowerMel::new(N_MELS))
    }
}

/// Frames for `n_samples` (librosa with `center=True`).
pub fn n_frames(n_samples: usize) -> usize {
    1 + n_samples / HOP_LENGTH
}

impl Mel40 {
    /// Appends the `[n_frames(samples.len()), 40]` mel power spectrogram of `samples` to `out`.
    pub fn compute_into(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        for t in 0..n_frames(samples.len()) {
            let start = (t * HOP_LENGTH) as isize - (N_FFT / 2) as isize;
            let at = out.len();
            out.resize(at + N_MELS, 0.0);
            self.0.frame(samples, start, |_| 0.0, &mut out[at..]);
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
