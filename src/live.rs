//! Live transcription: audio that is still arriving (a streamed upload, `http::api::live`) is
//! cut into windows at pauses and each window is transcribed as soon as it is cut, so text
//! comes back while the speaker goes on.
//!
//! Stage: 16 kHz samples in (from `audio::live`), [`Segment`]s out in the upload's time. Silero
//! VAD (`vad`, when the host has the graph) scores the audio as it comes, its LSTM state carried
//! from call to call. A window is cut when it holds at least [`MIN_WINDOW_S`] with speech in it
//! and the speech has paused for [`PAUSE_S`], or when it reaches Whisper's 30 s (at its
//! quietest frame in the second half). Audio without speech is dropped undecoded, so silence
//! and noise never reach the decoder (Whisper invents text there). Without the VAD graph a
//! window is every 30 s of audio.
//!
//! Each window is transcribed whole (`transcribe`, with its fallback and no-speech guard); the
//! first one's detected language holds for the rest, and the request's prompt is given to each
//! window. The windows are independent: no text is carried from one into the next.

use crate::error::Error;
use crate::mel::{self, HOP_LENGTH, N_SAMPLES};
use crate::model::Model;
use crate::nn::{Inference, VadNet};
use crate::transcribe::{self, Segment, TranscribeOptions, Transcript};
use crate::vad::{VadOptions, CONTEXT_SAMPLES, FRAME_SAMPLES, SAMPLE_RATE};

/// A window is cut at a pause only once it is this long (short windows decode worse and each
/// costs a whole encoder pass).
pub const MIN_WINDOW_S: f32 = 3.0;
/// Silence (VAD below its lower threshold) this long after speech ends a window.
pub const PAUSE_S: f32 = 0.6;
/// Silence kept after the last speech of a window, and before the next speech.
const PAD_S: f32 = 0.2;
/// Frames scored per VAD call while audio arrives (8 × 32 ms).
const SCORE_BATCH: usize = 8;

/// Voice activity detection for a live upload: the network and its thresholds.
pub struct LiveVad {
    pub net: Box<dyn VadNet>,
    pub options: VadOptions,
}

/// One live upload being transcribed.
pub struct Live<'a> {
    nn: &'a mut dyn Inference,
    model: &'a Model,
    opts: TranscribeOptions,
    vad: Option<LiveVad>,
    /// Audio not yet transcribed (or dropped); starts at sample `start` of the upload.
    pending: Vec<f32>,
    start: usize,
    /// The 64 samples before `pending` (the VAD's context for its first frame).
    context: Vec<f32>,
    /// Speech probability of each whole 512-sample frame of `pending` scored so far.
    probs: Vec<f32>,
    restart: bool,
    language: Option<(String, f32)>,
    segments: Vec<Segment>,
}

impl<'a> Live<'a> {
    pub fn new(nn: &'a mut dyn Inference, model: &'a Model, opts: TranscribeOptions, vad: Option<LiveVad>) -> Self {
        Live {
            nn,
            model,
            opts,
            vad,
            pending: Vec::new(),
            start: 0,
            context: vec![0.0; CONTEXT_SAMPLES],
            probs: Vec::new(),
            restart: true,
            language: None,
            segments: Vec::new(),
        }
    }

    /// Takes more audio; transcribes every window it completes, `on_segment` seeing each
    /// segment (times in the upload's).
    pub fn push(&mut self, samples: &[f32], on_segment: &mut dyn FnMut(&Segment)) -> Result<(), Error> {
        self.pending.extend_from_slice(samples);
        self.score(false)?;
        while let Some(cut) = self.next_cut(false) {
            self.window(cut, on_segment)?;
        }
        Ok(())
    }

    /// The upload ended: the rest is transcribed and the whole transcript returned.
    pub fn finish(mut self, on_segment: &mut dyn FnMut(&Segment)) -> Result<Transcript, Error> {
        self.score(true)?;
        while let Some(cut) = self.next_cut(true) {
            self.window(cut, on_segment)?;
        }
        let duration = self.start as f32 / SAMPLE_RATE as f32;
        let (language, language_probability) = self.language.take().unwrap_or_else(|| {
            let code = self.opts.language.clone().unwrap_or_else(|| "en".into());
            (code, if self.opts.language.is_some() || !self.model.config.multilingual { 1.0 } else { 0.0 })
        });
        let text = self.segments.iter().map(|s| s.text.as_str()).collect();
        Ok(Transcript { language, language_probability, duration, text, segments: self.segments })
    }

    /// Scores the whole frames not scored yet (in batches while audio arrives; at the end
    /// also the last partial frame, padded with zeros as `vad::speech_probs` does).
    fn score(&mut self, end: bool) -> Result<(), Error> {
        let Some(vad) = self.vad.as_mut() else { return Ok(()) };
        let whole = if end { self.pending.len().div_ceil(FRAME_SAMPLES) } else { self.pending.len() / FRAME_SAMPLES };
        let first = self.probs.len();
        if whole <= first || (!end && whole - first < SCORE_BATCH) {
            return Ok(());
        }
        let at = |i: usize| self.pending.get(i).copied().unwrap_or(0.0);
        let mut block = Vec::with_capacity((whole - first) * (CONTEXT_SAMPLES + FRAME_SAMPLES));
        for f in first..whole {
            let s = f * FRAME_SAMPLES;
            if f == 0 {
                block.extend_from_slice(&self.context);
            } else {
                block.extend((s - CONTEXT_SAMPLES..s).map(at));
            }
            block.extend((s..s + FRAME_SAMPLES).map(at));
        }
        let p = vad.net.score(&block, self.restart)?;
        if p.len() != whole - first {
            return Err(Error::Inference(format!("VAD returned {} probabilities for {} frames", p.len(), whole - first)));
        }
        self.restart = false;
        self.probs.extend(p);
        Ok(())
    }

    /// Where the next window ends (samples into `pending`), if one is complete.
    fn next_cut(&self, end: bool) -> Option<usize> {
        if self.pending.is_empty() {
            return None;
        }
        let full = N_SAMPLES.min(self.pending.len());
        let Some(vad) = &self.vad else {
            return (end || self.pending.len() >= N_SAMPLES).then_some(full);
        };
        let cut = cut_at(&self.probs, &vad.options, end)?;
        Some((cut * FRAME_SAMPLES).min(self.pending.len()))
    }

    /// Transcribes (or, without speech, drops) `pending[..cut]`.
    fn window(&mut self, cut: usize, on_segment: &mut dyn FnMut(&Segment)) -> Result<(), Error> {
        let frames = cut / FRAME_SAMPLES;
        let speech = match &self.vad {
            Some(v) => self.probs[..frames.min(self.probs.len())].iter().any(|&p| p as f64 >= v.options.threshold),
            None => true,
        };
        if speech {
            let mut opts = self.opts.clone();
            if let Some((code, _)) = &self.language {
                opts.language = Some(code.clone());
            }
            let mel = mel::log_mel(&self.pending[..cut], self.model.config.dims.n_mels);
            let offset = self.start as f32 / SAMPLE_RATE as f32;
            let (seek, first_id) = (self.start / HOP_LENGTH, self.segments.len());
            let t = transcribe::transcribe(self.nn, self.model, &mel, &opts, &mut |_| {})?;
            if self.language.is_none() {
                self.language = Some((t.language.clone(), t.language_probability));
            }
            for (i, mut s) in t.segments.into_iter().enumerate() {
                s.id = first_id + i;
                s.seek += seek;
                s.start += offset;
                s.end += offset;
                for w in &mut s.words {
                    w.start += offset;
                    w.end += offset;
                }
                on_segment(&s);
                self.segments.push(s);
            }
        }
        self.context = (cut - CONTEXT_SAMPLES.min(cut)..cut).map(|i| self.pending[i]).collect();
        self.context.splice(0..0, std::iter::repeat_n(0.0, CONTEXT_SAMPLES - self.context.len()));
        self.pending.drain(..cut);
        self.probs.drain(..frames.min(self.probs.len()));
        self.start += cut;
        Ok(())
    }
}

/// Where a window ends, in frames of `probs` (32 ms each, from the window's start):
/// - before its first speech, but for [`PAD_S`], when over 1 s of silence comes first (or
///   there is no speech at all): that part is dropped undecoded, so a window starts at its
///   speech and Whisper's first timestamp is the speech's;
/// - after a pause of [`PAUSE_S`] that follows speech, once the window is [`MIN_WINDOW_S`] long;
/// - at the quietest frame of the second half of a full 30 s window;
/// - at the end of the upload (`end`), at what is left.
pub fn cut_at(probs: &[f32], o: &VadOptions, end: bool) -> Option<usize> {
    let per_s = SAMPLE_RATE as f32 / FRAME_SAMPLES as f32;
    let frames = |s: f32| (s * per_s).round() as usize;
    let neg = o.neg_threshold.unwrap_or((o.threshold - 0.15).max(0.01)) as f32;
    let threshold = o.threshold as f32;
    let window = frames(30.0).min(N_SAMPLES / FRAME_SAMPLES);
    let n = probs.len();
    if n == 0 {
        return None;
    }
    let Some(first) = probs.iter().position(|&p| p >= threshold) else {
        return if end { Some(n) } else { (n > frames(1.0)).then(|| n - frames(PAD_S)) };
    };
    if first > frames(1.0) {
        return Some(first - frames(PAD_S));
    }
    let last = probs.iter().rposition(|&p| p >= threshold).unwrap_or(first);
    let silent = probs[last + 1..].iter().all(|&p| p < neg);
    if n >= frames(MIN_WINDOW_S) && n - 1 - last >= frames(PAUSE_S) && silent {
        return Some((last + 1 + frames(PAD_S)).min(n));
    }
    if n >= window {
        let quietest = (window / 2..window).min_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(window);
        return Some(quietest.max(1));
    }
    end.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(pattern: &[(f32, f32)]) -> Vec<f32> {
        // (seconds, probability) runs
        pattern.iter().flat_map(|&(s, p)| std::iter::repeat_n(p, (s * 31.25).round() as usize)).collect()
    }

    #[test]
    fn a_window_ends_at_a_pause_after_enough_speech() {
        let o = VadOptions::default();
        // 3.5 s of speech, then 0.4 s of silence: not yet a pause.
        assert_eq!(cut_at(&frames(&[(3.5, 0.9), (0.4, 0.05)]), &o, false), None);
        // 0.7 s of silence: cut 0.2 s after the speech.
        let p = frames(&[(3.5, 0.9), (0.7, 0.05)]);
        assert_eq!(cut_at(&p, &o, false), Some(109 + 6));
        // A pause after a short phrase waits until the window is 3 s long.
        assert_eq!(cut_at(&frames(&[(1.0, 0.9), (1.0, 0.05)]), &o, false), None);
        assert_eq!(cut_at(&frames(&[(1.0, 0.9), (2.2, 0.05)]), &o, false), Some(31 + 6));
        // Between the thresholds is not silence.
        assert_eq!(cut_at(&frames(&[(3.5, 0.9), (1.0, 0.4)]), &o, false), None);
    }

    #[test]
    fn a_full_window_ends_at_its_quietest_frame_and_silence_is_dropped() {
        let o = VadOptions::default();
        let mut p = frames(&[(30.0, 0.9)]);
        p[700] = 0.3;
        assert_eq!(cut_at(&p, &o, false), Some(700));
        // Only silence: dropped once over 1 s, but for the pad.
        let silence = frames(&[(1.5, 0.1)]);
        assert_eq!(cut_at(&silence, &o, false), Some(silence.len() - 6));
        assert_eq!(cut_at(&frames(&[(0.8, 0.1)]), &o, false), None);
        // Silence before speech too: the window starts 0.2 s before the speech.
        assert_eq!(cut_at(&frames(&[(8.0, 0.1), (5.0, 0.9)]), &o, false), Some(250 - 6));
        assert_eq!(cut_at(&frames(&[(8.0, 0.1), (5.0, 0.9)]), &o, true), Some(250 - 6));
        assert_eq!(cut_at(&frames(&[(0.5, 0.1), (5.0, 0.9)]), &o, false), None);
        // The end takes the rest, 30 s at a time.
        assert_eq!(cut_at(&frames(&[(1.0, 0.9)]), &o, true), Some(31));
        assert_eq!(cut_at(&frames(&[(0.5, 0.1)]), &o, true), Some(16));
        let mut long = frames(&[(40.0, 0.9)]);
        long[800] = 0.6;
        assert_eq!(cut_at(&long, &o, true), Some(800));
        assert_eq!(cut_at(&[], &o, true), None);
    }
}
