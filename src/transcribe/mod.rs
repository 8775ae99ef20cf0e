//! Long-form transcription: 30 s windows that seek by the last timestamp, temperature
//! fallback, the no-speech guard, conditioning on previous text, and segments.
//! Follows openai/whisper `whisper/transcribe.py` as faster-whisper 1.2.1 implements it
//! (`generate_segments`, `generate_with_fallback`), which is our token-for-token reference.

pub mod batched;
mod segments;

pub use segments::{split_segments, Split};

use crate::decode::{self, DecodeOptions, DecodeResult, Strategy, Task};
use crate::error::Error;
use crate::mel::{LogMel, N_FRAMES};
use crate::model::Model;
use crate::nn::Inference;
use crate::words::Word;
use segments::{Segments, Window};

#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    pub task: Task,
    /// Language code; `None` detects it from the first window.
    pub language: Option<String>,
    /// Tried in order until a result passes the checks below (Whisper: 0.0, 0.2 … 1.0).
    pub temperatures: Vec<f32>,
    /// Beam search at temperature 0 (`None` or 1: greedy). Whisper's CLI and faster-whisper
    /// default to 5, and so do we.
    pub beam_size: Option<usize>,
    pub patience: f32,
    /// Samples per window at temperature > 0.
    pub best_of: usize,
    pub compression_ratio_threshold: Option<f32>,
    pub logprob_threshold: Option<f32>,
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    /// Above this temperature the previous text is no longer used as a prompt.
    pub prompt_reset_on_temperature: f32,
    pub initial_prompt: Option<String>,
    /// Decode without timestamp tokens (one segment per window).
    pub without_timestamps: bool,
    /// Align each word to the audio (cross-attention + DTW, `words.rs`).
    pub word_timestamps: bool,
    /// Batched long-form (`batched.rs`): VAD's speech in chunks of up to 30 s, this many per
    /// network call. `None`: windows one after the other, each seeking from the last.
    pub batch_size: Option<usize>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size: Some(5),
            patience: 1.0,
            best_of: 5,
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            without_timestamps: false,
            word_timestamps: false,
            batch_size: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: usize,
    /// Mel frame the window started at.
    pub seek: usize,
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Word timings, when asked for.
    pub words: Vec<Word>,
}

#[derive(Debug, Clone)]
pub struct Transcript {
    pub language: String,
    pub language_probability: f32,
    /// Seconds of audio.
    pub duration: f32,
    pub text: String,
    pub segments: Vec<Segment>,
}

/// Refuses options the model cannot follow, before any audio is decoded (a stream checks them
/// before its 200): a language it does not know, or anything but English for an English-only
/// model.
pub fn check_options(model: &Model, opts: &TranscribeOptions) -> Result<(), Error> {
    let name = &model.config.name;
    if model.config.multilingual {
        if let Some(language) = &opts.language {
            if model.language_token(language).is_none() {
                return Err(Error::bad_param("language", format!("language '{language}' is not supported by model '{name}'")));
            }
        }
        return Ok(());
    }
    if opts.task == Task::Translate {
        return Err(Error::bad_param("task", format!("model '{name}' is English-only: it cannot translate; use a multilingual model such as 'base'")));
    }
    match opts.language.as_deref() {
        Some(language) if language != "en" => Err(Error::bad_param(
            "language",
            format!("model '{name}' is English-only: it cannot take language '{language}'; use a multilingual model such as 'base'"),
        )),
        _ => Ok(()),
    }
}

/// Transcribes a whole log-mel spectrogram. `on_segment` sees each segment as soon as its
/// window is decoded (for streaming).
pub fn transcribe(
    nn: &mut dyn Inference,
    model: &Model,
    mel: &LogMel,
    opts: &TranscribeOptions,
    on_segment: &mut dyn FnMut(&Segment),
) -> Result<Transcript, Error> {
    let content_frames = mel.content_frames();
    let duration = mel.seconds();

    // Language: given, or detected on the first window.
    let mut encoded_seek = None;
    let (language, language_probability, language_token) = resolve_language(model, opts, || {
        nn.encode(&mel.window(0))?;
        encoded_seek = Some(0);
        decode::detect_language(nn, model)
    })?;

    let all_tokens = initial_prompt_tokens(model, opts);
    let mut out = Segments::new(duration);
    out.all_tokens = all_tokens;
    let mut prompt_reset_since = 0;
    let mut seek = 0usize;

    while seek < content_frames {
        let segment_size = N_FRAMES.min(content_frames - seek);
        if is_silent(mel, seek, segment_size) {
            // Nothing audible: Whisper would run its whole fallback schedule here and may
            // still invent text ("…", "Thank you."); skip the window instead.
            seek += segment_size;
            continue;
        }
        if encoded_seek != Some(seek) {
            nn.encode(&mel.window(seek))?;
            encoded_seek = Some(seek);
        }
        let base = DecodeOptions {
            task: opts.task,
            language: language_token,
            without_timestamps: opts.without_timestamps,
            previous_tokens: out.all_tokens[prompt_reset_since..].to_vec(),
            seed: seek as u64 + 1,
            ..Default::default()
        };
        let result = decode_with_fallback(nn, model, opts, base, None)?;

        if is_no_speech(opts, &result) {
            seek += segment_size;
            continue;
        }

        let window = Window { seek, size: segment_size, language_token };
        seek = out.add_window(nn, model, opts, &result, &window, on_segment)?;
        if !opts.condition_on_previous_text || result.temperature > opts.prompt_reset_on_temperature {
            prompt_reset_since = out.all_tokens.len();
        }
    }
    Ok(out.into_transcript(language, language_probability))
}

/// The request's language (given, English for an English-only model, else `detect`ed: the
/// most likely one), its probability and its token.
fn resolve_language(
    model: &Model,
    opts: &TranscribeOptions,
    detect: impl FnOnce() -> Result<Vec<(String, f32)>, Error>,
) -> Result<(String, f32, Option<u32>), Error> {
    let (language, probability) = match &opts.language {
        Some(code) => (code.clone(), 1.0),
        None if !model.config.multilingual => ("en".to_string(), 1.0),
        None => detect()?.into_iter().next().unwrap_or(("en".into(), 0.0)),
    };
    check_options(model, opts)?;
    let token = if model.config.multilingual {
        Some(model.language_token(&language).ok_or_else(|| {
            Error::bad_param("language", format!("language '{language}' is not supported by model '{}'", model.config.name))
        })?)
    } else {
        None
    };
    Ok((language, probability, token))
}

/// Loudest mel power (log10) below which a window counts as silence: −60 dB under the
/// full-scale level at which speech sits (around 0 for a normal recording).
const SILENCE_LOG10_POWER: f32 = -6.0;

/// True when no mel bin of frames `seek .. seek + len` reaches `SILENCE_LOG10_POWER`.
/// The spectrogram is normalized as `(max(log10 p, max - 8) + 4) / 4`, so the bound maps to
/// `(SILENCE_LOG10_POWER + 4) / 4` (digital silence is −1.5 everywhere).
pub fn is_silent(mel: &LogMel, seek: usize, len: usize) -> bool {
    let bound = (SILENCE_LOG10_POWER + 4.0) / 4.0;
    let end = (seek + len).min(mel.n_frames());
    (0..mel.n_mels()).all(|m| mel.row(m)[seek..end].iter().all(|v| *v < bound))
}

/// How a window is decoded at temperature `t`.
fn strategy_at(opts: &TranscribeOptions, t: f32) -> Strategy {
    if t > 0.0 {
        Strategy::Sample { temperature: t, best_of: opts.best_of }
    } else if let Some(beam_size) = opts.beam_size.filter(|b| *b > 1) {
        Strategy::Beam { beam_size, patience: opts.patience }
    } else {
        Strategy::Greedy
    }
}

/// The temperatures to try, in order (at least one).
fn temperatures(opts: &TranscribeOptions) -> Vec<f32> {
    if opts.temperatures.is_empty() { vec![0.0] } else { opts.temperatures.clone() }
}

/// A result too repetitive or too unlikely to keep, unless the window is silence anyway.
fn needs_fallback(opts: &TranscribeOptions, result: &DecodeResult) -> bool {
    let too_repetitive = opts.compression_ratio_threshold.is_some_and(|c| result.compression_ratio > c);
    let too_unlikely = opts.logprob_threshold.is_some_and(|lp| result.avg_logprob < lp);
    let silent = opts.no_speech_threshold.is_some_and(|ns| result.no_speech_prob > ns) && too_unlikely;
    (too_repetitive || too_unlikely) && !silent
}

/// The no-speech guard: a window that is probably silence, without confident text, is skipped.
fn is_no_speech(opts: &TranscribeOptions, result: &DecodeResult) -> bool {
    let Some(threshold) = opts.no_speech_threshold else { return false };
    // Confident text despite the no-speech probability is kept.
    result.no_speech_prob > threshold && !opts.logprob_threshold.is_some_and(|lp| result.avg_logprob > lp)
}

/// Decodes the current window at each temperature until the result passes the
/// repetition and log-probability checks; if none does, the best attempt is kept. `first` is
/// the attempt at the first temperature when it was already decoded (in a batch).
fn decode_with_fallback(
    nn: &mut dyn Inference,
    model: &Model,
    opts: &TranscribeOptions,
    base: DecodeOptions,
    first: Option<DecodeResult>,
) -> Result<DecodeResult, Error> {
    let mut attempts: Vec<DecodeResult> = Vec::new();
    let temperatures = temperatures(opts);
    let mut first = first;
    for &t in &temperatures {
        let result = match first.take() {
            Some(done) => done,
            None => {
                let mut o = base.clone();
                o.strategy = strategy_at(opts, t);
                decode::decode_window(nn, model, &o)?
            }
        };
        if !needs_fallback(opts, &result) {
            return Ok(result);
        }
        attempts.push(result);
    }
    // Like faster-whisper: the most likely attempt that is not repetitive, else the most likely,
    // reported at the last temperature tried (faster-whisper: "to pass final temperature for
    // prompt_reset_on_temperature"; openai-whisper returns the last attempt itself), so the
    // segment's `temperature` and the prompt reset follow the references.
    let pick = |ok: &dyn Fn(&DecodeResult) -> bool| {
        attempts.iter().filter(|r| ok(r)).max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob)).cloned()
    };
    let threshold = opts.compression_ratio_threshold.unwrap_or(f32::INFINITY);
    let last = temperatures.last().copied().unwrap_or(0.0);
    pick(&|r| r.compression_ratio <= threshold)
        .or_else(|| pick(&|_| true))
        .map(|r| DecodeResult { temperature: last, ..r })
        .ok_or_else(|| Error::Internal("no decoding attempt".into()))
}

/// The initial prompt's tokens (the context of the first window).
fn initial_prompt_tokens(model: &Model, opts: &TranscribeOptions) -> Vec<u32> {
    match opts.initial_prompt.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(prompt) => model.tokenizer.encode(&format!(" {prompt}")),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_detected_on_the_spectrogram() {
        let silent = crate::mel::log_mel(&vec![0.0; 16000 * 5], 80);
        assert!(is_silent(&silent, 0, silent.content_frames()));
        // A −20 dBFS tone is not silence, nor is the window that contains it.
        let mut samples = vec![0.0f32; 16000 * 5];
        for (i, s) in samples[16000 * 2..16000 * 3].iter_mut().enumerate() {
            *s = 0.1 * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin();
        }
        let tone = crate::mel::log_mel(&samples, 80);
        assert!(!is_silent(&tone, 0, tone.content_frames()));
        assert!(is_silent(&tone, 0, 150)); // the first 1.5 s are still silent
    }
}
