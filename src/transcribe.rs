//! Long-form transcription: 30 s windows that seek by the last timestamp, temperature
//! fallback, the no-speech guard, conditioning on previous text, and segments.
//! Follows openai/whisper `whisper/transcribe.py` as faster-whisper 1.2.1 implements it
//! (`generate_segments`, `generate_with_fallback`), which is our token-for-token reference.

use crate::decode::{self, DecodeOptions, DecodeResult, Strategy, Task};
use crate::error::Error;
use crate::mel::{LogMel, FRAMES_PER_SECOND, N_FRAMES};
use crate::model::{Model, INPUT_STRIDE};
use crate::nn::Inference;
use crate::words::{self, SegmentSpan, TokenProbs, Word};

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
    let sp = *model.special();

    // Language: given, or detected on the first window.
    let (language, language_probability, mut encoded_seek) = match &opts.language {
        Some(code) => (code.clone(), 1.0, None),
        None if !model.config.multilingual => ("en".to_string(), 1.0, None),
        None => {
            nn.encode(&mel.window(0))?;
            let probs = decode::detect_language(nn, model)?;
            let (code, p) = probs.into_iter().next().unwrap_or(("en".into(), 0.0));
            (code, p, Some(0))
        }
    };
    check_options(model, opts)?;
    let language_token = if model.config.multilingual {
        Some(model.language_token(&language).ok_or_else(|| {
            Error::bad_param("language", format!("language '{language}' is not supported by model '{}'", model.config.name))
        })?)
    } else {
        None
    };

    let mut all_tokens: Vec<u32> = Vec::new();
    if let Some(prompt) = opts.initial_prompt.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        all_tokens.extend(model.tokenizer.encode(&format!(" {prompt}")));
    }
    let mut prompt_reset_since = 0;
    let mut segments: Vec<Segment> = Vec::new();
    let mut seek = 0usize;
    let mut last_speech_timestamp = 0.0f64;

    while seek < content_frames {
        let time_offset = seek as f32 / FRAMES_PER_SECOND as f32;
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
            previous_tokens: all_tokens[prompt_reset_since..].to_vec(),
            seed: seek as u64 + 1,
            ..Default::default()
        };
        let result = decode_with_fallback(nn, model, opts, base)?;

        if let Some(threshold) = opts.no_speech_threshold {
            let mut skip = result.no_speech_prob > threshold;
            if opts.logprob_threshold.is_some_and(|lp| result.avg_logprob > lp) {
                skip = false; // confident text despite the no-speech probability
            }
            if skip {
                seek += segment_size;
                continue;
            }
        }

        let window_seek = seek;
        let split = split_segments(&result, sp.timestamp_begin, seek, segment_size);
        seek = split.next_seek;
        let mut spans: Vec<SegmentSpan> = split
            .segments
            .iter()
            .map(|(start, end, range)| SegmentSpan { start: *start, end: *end, tokens: &result.tokens[range.clone()] })
            .collect();
        let mut words: Vec<Vec<Word>> = vec![Vec::new(); spans.len()];
        if opts.word_timestamps && !spans.is_empty() {
            let mut sot_sequence = vec![sp.sot];
            if model.config.multilingual {
                sot_sequence.extend(language_token);
                sot_sequence.push(if opts.task == Task::Translate { sp.translate } else { sp.transcribe });
            }
            let text_logprobs: Vec<f32> = split
                .segments
                .iter()
                .flat_map(|(_, _, range)| range.clone())
                .filter(|&i| result.tokens[i] < sp.eot)
                .map(|i| result.token_logprobs[i])
                .collect();
            words = words::add_word_timestamps(
                nn,
                model,
                &sot_sequence,
                &mut spans,
                window_seek,
                segment_size,
                TokenProbs::Logprobs(&text_logprobs),
                last_speech_timestamp,
            )?;
            if let Some(end) = words::get_end(&spans, &words) {
                // As faster-whisper: continue after the last word rather than the last timestamp.
                if !split.single_timestamp_ending && end > time_offset as f64 {
                    seek = (end * FRAMES_PER_SECOND as f64).round() as usize;
                }
                last_speech_timestamp = end;
            }
        }
        for (span, words) in spans.iter().zip(words) {
            let text = model.tokenizer.decode(span.tokens);
            // Zero-length or empty segments are dropped, and not used as context either.
            if span.start == span.end || text.trim().is_empty() {
                continue;
            }
            // The context for the next window keeps the timestamp tokens (as Whisper does).
            all_tokens.extend_from_slice(span.tokens);
            let start = (span.start as f32).min(duration);
            let end = (span.end as f32).min(duration).max(start);
            let segment = Segment {
                id: segments.len(),
                seek: window_seek,
                start,
                end,
                text,
                tokens: span.tokens.to_vec(),
                temperature: result.temperature,
                avg_logprob: result.avg_logprob,
                compression_ratio: result.compression_ratio,
                no_speech_prob: result.no_speech_prob,
                words,
            };
            on_segment(&segment);
            segments.push(segment);
        }
        if !opts.condition_on_previous_text || result.temperature > opts.prompt_reset_on_temperature {
            prompt_reset_since = all_tokens.len();
        }
    }

    let text = segments.iter().map(|s| s.text.as_str()).collect::<String>();
    Ok(Transcript { language, language_probability, duration, text, segments })
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

/// Decodes the current window at each temperature until the result passes the
/// repetition and log-probability checks; if none does, the best attempt is kept.
fn decode_with_fallback(
    nn: &mut dyn Inference,
    model: &Model,
    opts: &TranscribeOptions,
    base: DecodeOptions,
) -> Result<DecodeResult, Error> {
    let mut attempts: Vec<DecodeResult> = Vec::new();
    let temperatures = if opts.temperatures.is_empty() { vec![0.0] } else { opts.temperatures.clone() };
    for &t in &temperatures {
        let strategy = if t > 0.0 {
            Strategy::Sample { temperature: t, best_of: opts.best_of }
        } else if let Some(beam_size) = opts.beam_size.filter(|b| *b > 1) {
            Strategy::Beam { beam_size, patience: opts.patience }
        } else {
            Strategy::Greedy
        };
        let mut o = base.clone();
        o.strategy = strategy;
        let result = decode::decode_window(nn, model, &o)?;
        let too_repetitive = opts.compression_ratio_threshold.is_some_and(|c| result.compression_ratio > c);
        let too_unlikely = opts.logprob_threshold.is_some_and(|lp| result.avg_logprob < lp);
        let silent = opts.no_speech_threshold.is_some_and(|ns| result.no_speech_prob > ns) && too_unlikely;
        let needs_fallback = (too_repetitive || too_unlikely) && !silent;
        if !needs_fallback {
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

/// A window's tokens cut into segments.
pub struct Split {
    /// `(start_s, end_s, token range)` per segment; times as faster-whisper computes them
    /// (`seek * 0.01 + position * 0.02`, in f64, so comparisons tie the same way).
    pub segments: Vec<(f64, f64, std::ops::Range<usize>)>,
    /// Mel frame the next window starts at.
    pub next_seek: usize,
    /// The window ended with a lone timestamp: everything in it was consumed.
    pub single_timestamp_ending: bool,
}

/// Cuts a window's tokens into segments at consecutive timestamp pairs and finds where the
/// next window starts.
pub fn split_segments(result: &DecodeResult, timestamp_begin: u32, seek: usize, segment_size: usize) -> Split {
    let tokens = &result.tokens;
    let is_ts = |t: u32| t >= timestamp_begin;
    let time = |t: u32| words::faster_whisper_time(seek, t.saturating_sub(timestamp_begin));
    let single_timestamp_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let mut consecutive: Vec<usize> =
        (1..tokens.len()).filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i])).collect();

    let mut segments = Vec::new();
    if !consecutive.is_empty() {
        if single_timestamp_ending {
            consecutive.push(tokens.len());
        }
        let mut last = 0;
        for &cut in &consecutive {
            if cut > last {
                segments.push((time(tokens[last]), time(tokens[cut - 1]), last..cut));
            }
            last = cut;
        }
        let next_seek = if single_timestamp_ending {
            seek + segment_size
        } else {
            // Continue from the last complete segment's closing timestamp.
            let last_ts = tokens[last - 1].saturating_sub(timestamp_begin) as usize;
            seek + last_ts * INPUT_STRIDE
        };
        Split { segments, next_seek, single_timestamp_ending }
    } else {
        let mut end = seek as f64 * 0.01 + segment_size as f64 * 0.01;
        if let Some(&last_ts) = tokens.iter().rev().find(|t| is_ts(**t)) {
            if last_ts != timestamp_begin {
                end = time(last_ts);
            }
        }
        segments.push((seek as f64 * 0.01, end, 0..tokens.len()));
        Split { segments, next_seek: seek + segment_size, single_timestamp_ending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tokens: Vec<u32>) -> DecodeResult {
        DecodeResult {
            token_logprobs: vec![-0.1; tokens.len()],
            tokens,
            text: String::new(),
            sum_logprob: -1.0,
            avg_logprob: -0.1,
            no_speech_prob: 0.01,
            temperature: 0.0,
            compression_ratio: 1.0,
        }
    }

    const TB: u32 = 100; // timestamp_begin in these token lists

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn splits_at_consecutive_timestamps_and_seeks_to_the_last_one() {
        // <0.00> a b <1.00><1.00> c <2.00><2.40> d   (the last segment is unfinished)
        let r = result(vec![TB, 1, 2, TB + 50, TB + 50, 3, TB + 100, TB + 120, 4]);
        let s = split_segments(&r, TB, 3000, 3000);
        let segs = &s.segments;
        assert_eq!(segs.len(), 2);
        assert!(close((segs[0].0, segs[0].1), (30.0, 31.0)));
        assert_eq!(segs[0].2, 0..4);
        assert!(close((segs[1].0, segs[1].1), (31.0, 32.0)));
        // resumes at the closing timestamp of the last complete segment: 2.00 s = 200 frames
        assert_eq!(s.next_seek, 3000 + 200);
        assert!(!s.single_timestamp_ending);
    }

    #[test]
    fn a_single_timestamp_ending_consumes_the_whole_window() {
        let r = result(vec![TB, 1, TB + 50, TB + 50, 2, TB + 150]);
        let s = split_segments(&r, TB, 0, 3000);
        assert_eq!(s.segments.len(), 2);
        assert!(close((s.segments[1].0, s.segments[1].1), (1.0, 3.0)));
        assert_eq!(s.next_seek, 3000);
        assert!(s.single_timestamp_ending);
    }

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

    #[test]
    fn no_pairs_gives_one_segment_up_to_the_last_timestamp() {
        let r = result(vec![TB, 1, 2, TB + 210]);
        let s = split_segments(&r, TB, 0, 1100);
        assert_eq!(s.segments.len(), 1);
        assert!(close((s.segments[0].0, s.segments[0].1), (0.0, 4.2)));
        assert_eq!(s.next_seek, 1100);
        // without timestamps: the whole window
        let r = result(vec![1, 2]);
        let s = split_segments(&r, TB, 0, 1100);
        assert!(close((s.segments[0].0, s.segments[0].1), (0.0, 11.0)));
    }
}
