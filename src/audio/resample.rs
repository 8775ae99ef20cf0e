//! Streaming resampler to 16 kHz: rubato's `FftFixedIn`, a synchronous (exact-ratio)
//! resampler that multiplies the spectrum by a Blackman-Harris-windowed sinc low-pass whose
//! cutoff sits just under the lower Nyquist frequency: band-limited, with strong anti-aliasing.
//! It runs on the mono signal in chunks as packets arrive, so memory stays bounded.

use rubato::{FftFixedIn, Resampler};

use super::{unsupported, AudioError, TARGET_RATE};

/// Source sample rates we resample (outside: [`AudioError::Unsupported`]).
const MIN_SOURCE_RATE: u32 = 1_000;
const MAX_SOURCE_RATE: u32 = 768_000;

/// Source frames fed to the resampler per call (≈ 21–128 ms of input, depending on the rate).
const RESAMPLE_CHUNK: usize = 1024;

/// Streaming mono resampler from one source rate to 16 kHz (pass-through at 16 kHz).
pub(super) struct RateStage {
    pub(super) in_rate: u32,
    /// `None` when `in_rate == TARGET_RATE`.
    resampler: Option<FftFixedIn<f32>>,
    /// Downmixed source-rate samples not yet resampled (< `RESAMPLE_CHUNK` after `drain`).
    pub(super) pending: Vec<f32>,
    /// Output scratch, `[1][output_frames_max]`.
    scratch: Vec<Vec<f32>>,
    /// Leading output samples still to drop: the resampler's group delay.
    delay_left: usize,
    /// Source frames received / output frames emitted (after the delay) in this segment.
    pub(super) n_in: u64,
    n_out: u64,
}

impl RateStage {
    pub(super) fn new(in_rate: u32) -> Result<Self, AudioError> {
        // rubato's FFT sizes follow the rates' ratio and gcd: a WAV declaring 1.8 GHz wanted a
        // 914 M-point FFT (found by fuzzing:
        // wav-rate-1.8ghz-oom.wav), 1 Hz a 16 M-point one. Real audio lies within.
        if !(MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&in_rate) {
            return Err(unsupported(format!(
                "sample rate of {in_rate} Hz (supported: {MIN_SOURCE_RATE} Hz to {} kHz)",
                MAX_SOURCE_RATE / 1000
            )));
        }
        if in_rate == TARGET_RATE {
            return Ok(RateStage {
                in_rate,
                resampler: None,
                pending: Vec::new(),
                scratch: Vec::new(),
                delay_left: 0,
                n_in: 0,
                n_out: 0,
            });
        }
        let resampler =
            FftFixedIn::<f32>::new(in_rate as usize, TARGET_RATE as usize, RESAMPLE_CHUNK, 1, 1)
                .map_err(|e| unsupported(format!("sample rate of {in_rate} Hz ({e})")))?;
        let scratch = resampler.output_buffer_allocate(true);
        Ok(RateStage {
            in_rate,
            delay_left: resampler.output_delay(),
            resampler: Some(resampler),
            pending: Vec::with_capacity(2 * RESAMPLE_CHUNK),
            scratch,
            n_in: 0,
            n_out: 0,
        })
    }

    /// Resamples every whole chunk in `pending` into `out`.
    pub(super) fn drain(&mut self, out: &mut Vec<f32>) {
        let Some(resampler) = self.resampler.as_mut() else {
            self.n_out += self.pending.len() as u64;
            out.append(&mut self.pending);
            return;
        };
        let mut used = 0;
        while self.pending.len() - used >= RESAMPLE_CHUNK {
            let input = [&self.pending[used..used + RESAMPLE_CHUNK]];
            let (_, produced) = resampler
                .process_into_buffer(&input, &mut self.scratch, None)
                .expect("buffers sized by the resampler");
            used += RESAMPLE_CHUNK;
            Self::emit(
                &self.scratch[0][..produced],
                &mut self.delay_left,
                &mut self.n_out,
                out,
            );
        }
        self.pending.drain(..used);
    }

    fn emit(produced: &[f32], delay_left: &mut usize, n_out: &mut u64, out: &mut Vec<f32>) {
        let skip = (*delay_left).min(produced.len());
        *delay_left -= skip;
        out.extend_from_slice(&produced[skip..]);
        *n_out += (produced.len() - skip) as u64;
    }

    /// Flushes the tail: zero-pads the last partial chunk, pushes the delayed samples out and
    /// trims to `round(n_in · 16000 / in_rate)` output samples.
    pub(super) fn finish(mut self, out: &mut Vec<f32>) {
        self.drain(out);
        let Some(resampler) = self.resampler.as_mut() else {
            return;
        };
        let expected =
            (self.n_in * TARGET_RATE as u64 + self.in_rate as u64 / 2) / self.in_rate as u64;
        let mut first = true;
        while self.n_out < expected {
            let tail = [&self.pending[..]];
            let input = if first && !self.pending.is_empty() {
                Some(&tail[..])
            } else {
                None
            };
            first = false;
            let (_, produced) = resampler
                .process_partial_into_buffer(input, &mut self.scratch, None)
                .expect("buffers sized by the resampler");
            Self::emit(
                &self.scratch[0][..produced],
                &mut self.delay_left,
                &mut self.n_out,
                out,
            );
        }
        let extra = (self.n_out - expected) as usize;
        out.truncate(out.len() - extra);
    }
}

// ---------------------------------------------------------------------------------------------
// Magic-byte sniffing: name what we see, reject what we know we cannot decode
// ---------------------------------------------------------------------------------------------
