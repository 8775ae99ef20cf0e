//! Word-level timestamps from the cross-attention of the model's alignment heads.
//!
//! A port of the algorithm of openai/whisper `whisper/timing.py` (`find_alignment`,
//! `merge_punctuations`, `add_word_timestamps`) as faster-whisper 1.2.1 runs it
//! (`faster_whisper/transcribe.py`: `find_alignment`, `add_word_timestamps`;
//! `faster_whisper/tokenizer.py`: `split_to_word_tokens`; the median filter and DTW are
//! CTranslate2's `WhisperReplica::align`, which computes the same thing as whisper's
//! `median_filter` and `dtw_cpu`). Own code; the references are cited where each step is ported.
//!
//! Per 30 s window:
//! 1. one teacher-forced decoder pass over `sot_sequence, <|notimestamps|>, text…, <|endoftext|>`
//!    returns the softmaxed cross-attention weights of the alignment heads, `[heads, T, 1500]`;
//! 2. `alignment_matrix`: keep the frames of real audio (`num_frames / 2`) and renormalize each
//!    row, standardize each (head, frame) column over the tokens, median-filter (width 7) along
//!    the frames, average the heads, keep the rows of `<|notimestamps|>` and the text tokens;
//! 3. `dtw` over the negated matrix gives a monotonic token → frame path; the frame where the
//!    path enters each row is that row's time (0.02 s per frame), and a word runs from the entry
//!    time of its first row to that of the row after its last;
//! 4. `split_to_word_tokens` groups the tokens into words, `merge_punctuations` attaches
//!    punctuation, and `add_word_timestamps` distributes the words over the window's segments
//!    with Whisper's clamps for over-long words.
//!
//! Files: [`alignment`] (steps 1–3), [`split`] (words from tokens), [`assign`] (punctuation,
//! clamps, segments); this one holds the types and the per-window entry points.

mod alignment;
mod assign;
mod split;
#[cfg(test)]
mod tests;

pub use alignment::{alignment_matrix, dtw, find_alignment, median_filter};
pub use assign::{assign_words_to_segments, merge_punctuations, truncate_long_words_at_sentence_ends};
pub use split::{split_to_word_tokens, split_tokens_on_spaces, split_tokens_on_unicode};

use crate::error::Error;
use crate::model::Model;
use crate::nn::Inference;

/// Whisper's `medfilt_width` / faster-whisper's `median_filter_width`.
pub const MEDIAN_FILTER_WIDTH: usize = 7;
/// Encoder positions per second (`TOKENS_PER_SECOND`): one per 0.02 s.
pub const TOKENS_PER_SECOND: f64 = 50.0;
/// Mel frames per second (faster-whisper's `frames_per_second`).
const FRAMES_PER_SECOND: f64 = 100.0;
/// Whisper's default `prepend_punctuations`: merged into the word that follows.
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Whisper's default `append_punctuations`: merged into the word before.
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";

/// A word of the transcript with absolute times in seconds (rounded to 0.01 s, as Whisper does).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub word: String,
    pub start: f32,
    pub end: f32,
    /// Mean probability of the word's tokens (see `TokenProbs`).
    pub probability: f32,
}

/// A word as the alignment gives it (Whisper's `WordTiming`): times relative to the window
/// start, before the segment-level adjustments.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// Where the word probabilities come from.
#[derive(Debug, Clone, Copy)]
pub enum TokenProbs<'a> {
    /// Whisper's own: the probability of each text token under teacher forcing, softmax over the
    /// text vocabulary (ids below `<|endoftext|>`). The decoder only returns the logits of the last
    /// new position, so this runs the sequence one token per step (`len(text) + 2` decoder
    /// calls instead of one); the alignment weights are the same.
    TeacherForced,
    /// The log-probabilities the token loop gave the sampled text tokens (one per text token, in
    /// order); a word's probability is the mean of their `exp` (Whisper averages probabilities,
    /// not log-probabilities). One decoder call. These come from the filtered distribution over
    /// the whole vocabulary in the timestamped context, so they are close to, but not the same
    /// as, Whisper's: on jfk (greedy) most words are within 0.05, the worst 0.25 off. All zeros
    /// give every word probability 1.
    Logprobs(&'a [f32]),
}

/// One segment of a window, as the window's tokens were cut (faster-whisper's `subsegment`).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSpan<'a> {
    /// Seconds. `add_word_timestamps` moves them to the first word's start / last word's end
    /// (or keeps them when that word looks too long). For Whisper's exact tie-breaking compute
    /// them in f64 as faster-whisper does (`faster_whisper_time`).
    pub start: f64,
    pub end: f64,
    /// The segment's tokens; timestamps (and anything from `<|endoftext|>` up) are ignored.
    pub tokens: &'a [u32],
}

/// `seek * 0.01 + position * 0.02`, evaluated as faster-whisper evaluates segment times
/// (`time_offset + timestamp_position * time_precision`, `time_offset = seek * time_per_frame`),
/// so that comparisons between segment and word times tie the same way.
pub fn faster_whisper_time(seek: usize, timestamp_position: u32) -> f64 {
    seek as f64 * 0.01 + timestamp_position as f64 * 0.02
}

/// faster-whisper `add_word_timestamps` for one window (its sequential path, where the window's
/// segments form one group): aligns the text tokens of all `segments` in one go, then gives each
/// segment its words and moves the segment's start/end to them. `seek`: the window's first mel
/// frame; `num_frames`: mel frames of audio in the window (`segment_size`); `sot_sequence`:
/// `sot` plus language and task tokens (no previous text, no `<|notimestamps|>`);
/// `last_speech_timestamp`: end of the speech before this window (0 at the start; afterwards
/// `get_end` of the previous window). `TokenProbs::Logprobs` holds one value per text token of
/// all segments together. Returns the words of each segment (empty when it has none).
#[allow(clippy::too_many_arguments)]
pub fn add_word_timestamps(
    nn: &mut dyn Inference,
    model: &Model,
    sot_sequence: &[u32],
    segments: &mut [SegmentSpan<'_>],
    seek: usize,
    num_frames: usize,
    probs: TokenProbs<'_>,
    last_speech_timestamp: f64,
) -> Result<Vec<Vec<Word>>, Error> {
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let eot = model.special().eot;
    let text_tokens: Vec<u32> =
        segments.iter().flat_map(|s| s.tokens.iter().copied().filter(|t| *t < eot)).collect();
    let mut alignment = find_alignment(nn, model, sot_sequence, &text_tokens, num_frames, probs)?;
    let (median_duration, max_duration) = truncate_long_words_at_sentence_ends(&mut alignment);
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
    let time_offset = seek as f64 / FRAMES_PER_SECOND;
    Ok(assign_words_to_segments(
        &alignment,
        segments,
        eot,
        time_offset,
        median_duration,
        max_duration,
        last_speech_timestamp,
    ))
}

/// Words of one window's text with absolute times, without segments: the alignment, the
/// sentence-end clamp and the punctuation merge of `add_word_timestamps`, empty words dropped.
pub fn align_words(
    nn: &mut dyn Inference,
    model: &Model,
    sot_sequence: &[u32],
    text_tokens: &[u32],
    num_frames: usize,
    time_offset: f64,
    probs: TokenProbs<'_>,
) -> Result<Vec<Word>, Error> {
    let mut alignment = find_alignment(nn, model, sot_sequence, text_tokens, num_frames, probs)?;
    truncate_long_words_at_sentence_ends(&mut alignment);
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
    Ok(alignment
        .iter()
        .filter(|t| !t.word.is_empty())
        .map(|t| Word {
            word: t.word.clone(),
            start: round2(time_offset + t.start) as f32,
            end: round2(time_offset + t.end) as f32,
            probability: t.probability as f32,
        })
        .collect())
}

/// faster-whisper's `get_end`: the end of the last word of the last segment that has words,
/// else the last segment's end (`None` without segments). faster-whisper's loop makes it the
/// next window's `last_speech_timestamp`, and (unless the window ended on a single timestamp)
/// seeks to `round(get_end * 100)` when it is past the window start.
pub fn get_end(segments: &[SegmentSpan<'_>], words: &[Vec<Word>]) -> Option<f64> {
    words
        .iter()
        .rev()
        .find_map(|w| w.last())
        .map(|w| round2(w.end as f64))
        .or_else(|| segments.last().map(|s| s.end))
}

/// Whisper `find_alignment`: one teacher-forced pass, the alignment matrix, DTW, and the words
/// with window-relative times. The last word (the end-of-text "word") is not returned.

/// Python's `round(x, 2)` for the values met here (nowhere near a half-way case).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

