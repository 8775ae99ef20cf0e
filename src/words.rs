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

use crate::error::Error;
use crate::model::{Model, INPUT_STRIDE};
use crate::nn::Inference;
use crate::tokenizer::Tokenizer;

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
const SENTENCE_END_MARKS: &str = ".。!！?？";
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;
/// Languages whose words are not separated by spaces: split at every complete character.
const NO_SPACE_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

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
pub fn find_alignment(
    nn: &mut dyn Inference,
    model: &Model,
    sot_sequence: &[u32],
    text_tokens: &[u32],
    num_frames: usize,
    probs: TokenProbs<'_>,
) -> Result<Vec<WordTiming>, Error> {
    if text_tokens.is_empty() {
        return Ok(Vec::new());
    }
    let sp = *model.special();
    let mut seq = Vec::with_capacity(sot_sequence.len() + text_tokens.len() + 2);
    seq.extend_from_slice(sot_sequence);
    seq.push(sp.no_timestamps);
    seq.extend_from_slice(text_tokens);
    seq.push(sp.eot);
    if seq.len() > model.config.dims.n_text_ctx {
        return Err(Error::Internal(format!(
            "word alignment needs {} positions, the decoder has {}",
            seq.len(),
            model.config.dims.n_text_ctx
        )));
    }
    let n_ctx = model.config.dims.n_audio_ctx;
    let (weights, n_heads, token_probs) = match probs {
        TokenProbs::Logprobs(lp) => {
            if lp.len() != text_tokens.len() {
                return Err(Error::Internal(format!(
                    "{} log-probabilities for {} text tokens",
                    lp.len(),
                    text_tokens.len()
                )));
            }
            let out = nn.decode(&seq, 1, &[0], true, true)?;
            let (w, h) = check_alignment(out.alignment, seq.len(), n_ctx)?;
            (w, h, lp.iter().map(|l| (*l as f64).exp()).collect::<Vec<f64>>())
        }
        TokenProbs::TeacherForced => teacher_forced(nn, model, &seq, sot_sequence.len() + 1, n_ctx)?,
    };

    let n_frames = (num_frames / INPUT_STRIDE).clamp(1, n_ctx);
    let n_rows = text_tokens.len() + 1; // <|notimestamps|> and the text tokens
    let matrix = alignment_matrix(&weights, n_heads, seq.len(), n_ctx, n_frames, sot_sequence.len());
    let negated: Vec<f32> = matrix.iter().map(|v| -v).collect();
    let (text_idx, time_idx) = dtw(&negated, n_rows, n_frames);

    let language = language_of(model, sot_sequence);
    let mut with_eot = text_tokens.to_vec();
    with_eot.push(sp.eot);
    let (words, word_tokens) = split_to_word_tokens(&model.tokenizer, language, &with_eot);
    if word_tokens.len() <= 1 {
        return Ok(Vec::new());
    }
    // Boundaries of the words (the end-of-text word excluded) in text-token indices.
    let mut boundaries = vec![0usize];
    for t in &word_tokens[..word_tokens.len() - 1] {
        boundaries.push(boundaries.last().unwrap() + t.len());
    }
    // Time at which the path enters each row: the path visits every row, so there is one per
    // row (`n_rows`), and the boundaries go up to `text_tokens.len() = n_rows - 1`.
    let jump_times: Vec<f64> = (0..text_idx.len())
        .filter(|&k| k == 0 || text_idx[k] != text_idx[k - 1])
        .map(|k| time_idx[k] as f64 / TOKENS_PER_SECOND)
        .collect();
    debug_assert_eq!(jump_times.len(), n_rows);
    Ok(words
        .into_iter()
        .zip(word_tokens)
        .zip(boundaries.windows(2))
        .map(|((word, tokens), b)| {
            let p = &token_probs[b[0]..b[1]];
            let probability = p.iter().sum::<f64>() / p.len() as f64;
            WordTiming { word, tokens, start: jump_times[b[0]], end: jump_times[b[1]], probability }
        })
        .collect())
}

/// The language a window was decoded in: the language token of its `sot_sequence` (English
/// for English-only models). Like Whisper, translation keeps the source language here.
fn language_of<'m>(model: &'m Model, sot_sequence: &[u32]) -> &'m str {
    sot_sequence.iter().find_map(|t| model.language_of_token(*t)).unwrap_or("en")
}

/// Checks the decoder's alignment output `[1, heads, t, n_ctx]` and returns it with `heads`.
fn check_alignment(alignment: Option<Vec<f32>>, t: usize, n_ctx: usize) -> Result<(Vec<f32>, usize), Error> {
    let w = alignment.ok_or_else(|| Error::Inference("the decoder returned no alignment weights".into()))?;
    let per_head = t * n_ctx;
    if w.is_empty() || w.len() % per_head != 0 {
        return Err(Error::Inference(format!(
            "alignment weights have {} values, not a multiple of {t} tokens x {n_ctx} positions",
            w.len()
        )));
    }
    let heads = w.len() / per_head;
    Ok((w, heads))
}

/// Runs `seq` one token per step after its first `prompt_len` tokens, collecting the alignment
/// rows and, from each step's logits, the probability of the next text token. Returns
/// `[heads, seq.len(), n_ctx]` weights, the head count and one probability per text token.
fn teacher_forced(
    nn: &mut dyn Inference,
    model: &Model,
    seq: &[u32],
    prompt_len: usize,
    n_ctx: usize,
) -> Result<(Vec<f32>, usize, Vec<f64>), Error> {
    let eot = model.special().eot as usize;
    let n_vocab = model.config.dims.n_vocab;
    let t_all = seq.len();
    let mut weights: Vec<f32> = Vec::new();
    let mut heads = 0;
    let mut probs = Vec::with_capacity(t_all - prompt_len - 1);
    let mut pos = 0;
    while pos < t_all {
        let n = if pos == 0 { prompt_len } else { 1 };
        let out = nn.decode(&seq[pos..pos + n], 1, &[0], pos == 0, true)?;
        let (w, h) = check_alignment(out.alignment, n, n_ctx)?;
        if pos == 0 {
            heads = h;
            weights = vec![0.0; heads * t_all * n_ctx];
        } else if h != heads {
            return Err(Error::Inference(format!("alignment heads changed from {heads} to {h}")));
        }
        for hd in 0..heads {
            for k in 0..n {
                let src = &w[(hd * n + k) * n_ctx..][..n_ctx];
                weights[(hd * t_all + pos + k) * n_ctx..][..n_ctx].copy_from_slice(src);
            }
        }
        pos += n;
        // The logits of the last new position predict `seq[pos]`: a text token until eot.
        if pos < t_all - 1 {
            let logits = out.logits.get(..n_vocab.min(out.logits.len())).unwrap_or(&[]);
            probs.push(text_token_prob(logits, seq[pos] as usize, eot));
        }
    }
    Ok((weights, heads, probs))
}

/// Softmax over the text vocabulary (`logits[..eot]`) at `token`, as Whisper's
/// `sampled_logits = logits[:, :eot]; token_probs = sampled_logits.softmax(-1)`.
fn text_token_prob(logits: &[f32], token: usize, eot: usize) -> f64 {
    let text = &logits[..eot.min(logits.len())];
    if token >= text.len() {
        return 0.0;
    }
    let max = text.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
    let sum: f64 = text.iter().map(|v| (*v as f64 - max).exp()).sum();
    (text[token] as f64 - max).exp() / sum
}

/// Whisper's weight pipeline (`find_alignment`): `weights` is `[heads, n_tokens, n_ctx]`,
/// softmaxed over `n_ctx`. Keeps the first `n_frames` positions and renormalizes each row (the
/// same as Whisper's softmax of the sliced logits), standardizes every (head, frame) column over
/// the tokens (population std, as `torch.std_mean(..., unbiased=False)` and CTranslate2's
/// `LayerNorm(-2, 0)`), median-filters each row along the frames, averages the heads and returns
/// rows `skip_rows .. n_tokens - 1` (Whisper's `matrix[len(sot_sequence):-1]`), `[rows, n_frames]`.
/// A column with zero spread (degenerate input) standardizes to 0 rather than NaN.
pub fn alignment_matrix(
    weights: &[f32],
    n_heads: usize,
    n_tokens: usize,
    n_ctx: usize,
    n_frames: usize,
    skip_rows: usize,
) -> Vec<f32> {
    assert!(n_frames <= n_ctx && weights.len() >= n_heads * n_tokens * n_ctx);
    let mut w = vec![0.0f32; n_heads * n_tokens * n_frames];
    for (row, dst) in w.chunks_exact_mut(n_frames).enumerate() {
        let src = &weights[row * n_ctx..][..n_frames];
        let sum: f32 = src.iter().sum();
        for (d, s) in dst.iter_mut().zip(src) {
            *d = if sum > 0.0 { s / sum } else { 0.0 };
        }
    }
    for h in 0..n_heads {
        let head = &mut w[h * n_tokens * n_frames..][..n_tokens * n_frames];
        for f in 0..n_frames {
            let mean = (0..n_tokens).map(|t| head[t * n_frames + f] as f64).sum::<f64>() / n_tokens as f64;
            let var = (0..n_tokens).map(|t| (head[t * n_frames + f] as f64 - mean).powi(2)).sum::<f64>()
                / n_tokens as f64;
            let std = var.sqrt();
            for t in 0..n_tokens {
                let v = &mut head[t * n_frames + f];
                *v = if std > 0.0 { ((*v as f64 - mean) / std) as f32 } else { 0.0 };
            }
        }
    }
    median_filter(&mut w, n_frames, MEDIAN_FILTER_WIDTH);
    let end = n_tokens.saturating_sub(1).max(skip_rows);
    let rows = end - skip_rows;
    let mut out = vec![0.0f32; rows * n_frames];
    for h in 0..n_heads {
        for r in 0..rows {
            let src = &w[(h * n_tokens + skip_rows + r) * n_frames..][..n_frames];
            for (o, s) in out[r * n_frames..][..n_frames].iter_mut().zip(src) {
                *o += s;
            }
        }
    }
    for o in &mut out {
        *o /= n_heads as f32;
    }
    out
}

/// Median filter of odd `width` along each row of `row_len` values, with reflect padding
/// (`x[-k] = x[k]`, `x[n-1+k] = x[n-1-k]`), as whisper's `median_filter` (torch `F.pad(...,
/// mode="reflect")`) and CTranslate2's `MedianFilter`. Rows no longer than `width / 2` are left
/// as they are (whisper returns its input unchanged then).
pub fn median_filter(data: &mut [f32], row_len: usize, width: usize) {
    assert!(width % 2 == 1, "the median filter width must be odd");
    let r = width / 2;
    if row_len == 0 || row_len <= r {
        return;
    }
    let n = row_len as isize;
    let mut src = vec![0.0f32; row_len];
    let mut window = vec![0.0f32; width];
    for row in data.chunks_exact_mut(row_len) {
        src.copy_from_slice(row);
        for (j, out) in row.iter_mut().enumerate() {
            for (k, slot) in window.iter_mut().enumerate() {
                let mut i = j as isize + k as isize - r as isize;
                if i < 0 {
                    i = -i;
                } else if i >= n {
                    i = 2 * n - 2 - i;
                }
                *slot = src[i as usize];
            }
            let (_, median, _) = window.select_nth_unstable_by(r, |a, b| a.total_cmp(b));
            *out = *median;
        }
    }
}

/// Dynamic time warping with Whisper's `dtw_cpu` conventions: minimizes the summed `cost`
/// (`[n_rows, n_cols]` row-major) along a path from (0, 0) to (n_rows-1, n_cols-1) moving
/// diagonally, down (next row) or right (next column). Ties prefer the move right unless the
/// diagonal or the move down is strictly cheapest (whisper's `if c0 < c1 and c0 < c2 … elif c1 < c0
/// and c1 < c2 … else`); the backtrace treats the first row as "came from the left" and the
/// first column as "came from above". Returns the path's row and column indices, in order.
pub fn dtw(cost: &[f32], n_rows: usize, n_cols: usize) -> (Vec<usize>, Vec<usize>) {
    assert_eq!(cost.len(), n_rows * n_cols);
    if n_rows == 0 || n_cols == 0 {
        return (Vec::new(), Vec::new());
    }
    let w = n_cols + 1;
    let mut acc = vec![f32::INFINITY; (n_rows + 1) * w];
    // 0: diagonal, 1: from the row above, 2: from the column to the left.
    let mut trace = vec![u8::MAX; (n_rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=n_cols {
        for i in 1..=n_rows {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * n_cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    trace[..w].fill(2);
    for i in 0..=n_rows {
        trace[i * w] = 1;
    }
    let (mut i, mut j) = (n_rows, n_cols);
    let mut path = Vec::with_capacity(n_rows + n_cols);
    while i > 0 || j > 0 {
        // Whisper records (i-1, j-1); on the border (a path that only NaN/inf costs can force
        // there) the -1 is clamped to 0.
        path.push((i.saturating_sub(1), j.saturating_sub(1)));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path.into_iter().unzip()
}

/// faster-whisper `Tokenizer.split_to_word_tokens`: words on spaces and punctuation, or on
/// every complete character for languages written without spaces (zh, ja, th, lo, my, yue).
/// Tokens from `<|endoftext|>` up decode to nothing (faster-whisper decodes with the Hugging Face
/// tokenizer, which skips special tokens).
pub fn split_to_word_tokens(tokenizer: &Tokenizer, language: &str, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    if NO_SPACE_LANGUAGES.contains(&language) {
        split_tokens_on_unicode(tokenizer, tokens)
    } else {
        split_tokens_on_spaces(tokenizer, tokens)
    }
}

/// Text of `tokens` as faster-whisper's `decode_with_timestamps` gives it for text and special
/// tokens: the tokens' bytes as UTF-8, invalid sequences replaced by U+FFFD.
fn decode_lossy(tokenizer: &Tokenizer, tokens: &[u32]) -> String {
    let eot = tokenizer.special.eot;
    let bytes: Vec<u8> =
        tokens.iter().filter(|t| **t < eot).flat_map(|t| tokenizer.token_bytes(*t).iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// faster-whisper `split_tokens_on_unicode`: a word ends after every token at which the decoded
/// text so far has no replacement character, other than ones the whole text has there too (a
/// character split over tokens is kept whole; invalid bytes in the text do not block forever).
pub fn split_tokens_on_unicode(tokenizer: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    const REPLACEMENT: char = '\u{FFFD}';
    let full: Vec<char> = decode_lossy(tokenizer, tokens).chars().collect();
    let mut words = Vec::new();
    let mut word_tokens = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut offset = 0; // characters of `full` already given to words
    for &token in tokens {
        current.push(token);
        let decoded = decode_lossy(tokenizer, &current);
        let bad = decoded.chars().position(|c| c == REPLACEMENT).map(|i| i + offset);
        let complete = match bad {
            None => true,
            Some(i) => i < full.len() && full[i] == REPLACEMENT,
        };
        if complete {
            offset += decoded.chars().count();
            words.push(decoded);
            word_tokens.push(std::mem::take(&mut current));
        }
    }
    (words, word_tokens)
}

/// faster-whisper `split_tokens_on_spaces`: the pieces of `split_tokens_on_unicode`, joined onto
/// the previous word unless they start with a space, are punctuation (Python's
/// `piece.strip() in string.punctuation`, a substring test) or are special tokens.
pub fn split_tokens_on_spaces(tokenizer: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    let (pieces, piece_tokens) = split_tokens_on_unicode(tokenizer, tokens);
    let eot = tokenizer.special.eot;
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (piece, toks) in pieces.into_iter().zip(piece_tokens) {
        let special = toks[0] >= eot;
        let with_space = piece.starts_with(' ');
        let punctuation = ASCII_PUNCTUATION.contains(py_strip(&piece));
        if special || with_space || punctuation || words.is_empty() {
            words.push(piece);
            word_tokens.push(toks);
        } else {
            words.last_mut().unwrap().push_str(&piece);
            word_tokens.last_mut().unwrap().extend(toks);
        }
    }
    (words, word_tokens)
}

/// Python's `str.strip()` (Unicode whitespace plus the ASCII separators 0x1C–0x1F).
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Whisper `merge_punctuations`: a word that is a space plus a `prepended` mark joins the word
/// after it, and a word in `appended` joins the word before it (unless that word ends with a
/// space). The emptied words stay in place with no text and no tokens, keeping their times.
/// Membership is Python's substring test (`"" in s` is true), as in the reference.
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    let n = alignment.len();
    if n >= 2 {
        let mut j = n - 1;
        for i in (0..n - 1).rev() {
            let prev = &alignment[i];
            if prev.word.starts_with(' ') && prepended.contains(py_strip(&prev.word)) {
                let (word, tokens) = (std::mem::take(&mut alignment[i].word), std::mem::take(&mut alignment[i].tokens));
                let next = &mut alignment[j];
                next.word.insert_str(0, &word);
                next.tokens = [tokens, std::mem::take(&mut next.tokens)].concat();
            } else {
                j = i;
            }
        }
    }
    let mut i = 0;
    for j in 1..n {
        if !alignment[i].word.ends_with(' ') && appended.contains(alignment[j].word.as_str()) {
            let (word, tokens) = (std::mem::take(&mut alignment[j].word), std::mem::take(&mut alignment[j].tokens));
            let prev = &mut alignment[i];
            prev.word.push_str(&word);
            prev.tokens.extend(tokens);
        } else {
            i = j;
        }
    }
}

/// The window-level part of `add_word_timestamps` before the punctuation merge: the median
/// duration of the words (nonzero durations only, at most 0.7 s) and the maximum (twice that),
/// and, when some word has a duration, the clamp of words longer than the maximum at sentence
/// ends (a sentence mark itself is cut after `max`; the word after one is cut to its last `max`).
/// Returns `(median_duration, max_duration)`.
pub fn truncate_long_words_at_sentence_ends(alignment: &mut [WordTiming]) -> (f64, f64) {
    let mut durations: Vec<f64> = alignment.iter().map(|t| t.end - t.start).filter(|d| *d != 0.0).collect();
    let median = if durations.is_empty() {
        0.0
    } else {
        durations.sort_by(f64::total_cmp);
        let m = durations.len() / 2;
        if durations.len() % 2 == 1 {
            durations[m]
        } else {
            (durations[m - 1] + durations[m]) / 2.0
        }
    };
    let median_duration = median.min(0.7);
    let max_duration = median_duration * 2.0;
    if !durations.is_empty() {
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if SENTENCE_END_MARKS.contains(alignment[i].word.as_str()) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if SENTENCE_END_MARKS.contains(alignment[i - 1].word.as_str()) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    (median_duration, max_duration)
}

/// The segment-level part of faster-whisper `add_word_timestamps`: walks the (merged) words in
/// order, giving each segment words until they cover its text-token count; times become absolute
/// (`time_offset +`, rounded to 0.01 s) and empty words are skipped. Then per segment with words:
/// the first word after a pause (ending more than `4 × median` after `last_speech_timestamp`) is
/// cut to `max_duration` (and split from an over-long second word); the segment's start/end
/// become the first word's start / last word's end unless that word sticks out by more than
/// 0.5 s past a segment boundary it overlaps, in which case the word is cut to the segment
/// instead. Returns the words of each segment.
pub fn assign_words_to_segments(
    alignment: &[WordTiming],
    segments: &mut [SegmentSpan<'_>],
    eot: u32,
    time_offset: f64,
    median_duration: f64,
    max_duration: f64,
    mut last_speech_timestamp: f64,
) -> Vec<Vec<Word>> {
    struct W {
        word: String,
        start: f64,
        end: f64,
        probability: f64,
    }
    let mut out = Vec::with_capacity(segments.len());
    let mut word_index = 0;
    for segment in segments.iter_mut() {
        let n_text = segment.tokens.iter().filter(|t| **t < eot).count();
        let mut saved_tokens = 0;
        let mut words: Vec<W> = Vec::new();
        while word_index < alignment.len() && saved_tokens < n_text {
            let timing = &alignment[word_index];
            if !timing.word.is_empty() {
                words.push(W {
                    word: timing.word.clone(),
                    start: round2(time_offset + timing.start),
                    end: round2(time_offset + timing.end),
                    probability: timing.probability,
                });
            }
            saved_tokens += timing.tokens.len();
            word_index += 1;
        }
        if !words.is_empty() {
            // The first and second word after a pause are at most twice the median duration.
            if words[0].end - last_speech_timestamp > median_duration * 4.0
                && (words[0].end - words[0].start > max_duration
                    || (words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0))
            {
                if words.len() > 1 && words[1].end - words[1].start > max_duration {
                    let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                    words[0].end = boundary;
                    words[1].start = boundary;
                }
                words[0].start = (words[0].end - max_duration).max(0.0);
            }
            // Prefer the segment's own start if the first word is too long.
            if segment.start < words[0].end && segment.start - 0.5 > words[0].start {
                words[0].start = (words[0].end - median_duration).min(segment.start).max(0.0);
            } else {
                segment.start = words[0].start;
            }
            // Prefer the segment's own end if the last word is too long.
            let last = words.len() - 1;
            if segment.end > words[last].start && segment.end + 0.5 < words[last].end {
                words[last].end = (words[last].start + median_duration).max(segment.end);
            } else {
                segment.end = words[last].end;
            }
            last_speech_timestamp = segment.end;
        }
        out.push(
            words
                .into_iter()
                .map(|w| Word { word: w.word, start: w.start as f32, end: w.end as f32, probability: w.probability as f32 })
                .collect(),
        );
    }
    out
}

/// Python's `round(x, 2)` for the values met here (nowhere near a half-way case).
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::StepOutput;

    // ---- DTW

    /// Cost 0 on the cells of `path`, 1 elsewhere.
    fn cost_with_path(n: usize, m: usize, path: &[(usize, usize)]) -> Vec<f32> {
        let mut c = vec![1.0f32; n * m];
        for &(i, j) in path {
            c[i * m + j] = 0.0;
        }
        c
    }

    #[test]
    fn dtw_follows_the_diagonal() {
        let path: Vec<(usize, usize)> = (0..4).map(|k| (k, k)).collect();
        let (rows, cols) = dtw(&cost_with_path(4, 4, &path), 4, 4);
        assert_eq!(rows, vec![0, 1, 2, 3]);
        assert_eq!(cols, vec![0, 1, 2, 3]);
    }

    #[test]
    fn dtw_stays_on_a_row_and_on_a_column() {
        // Row 1 holds columns 1..=4 (a long token); column 5 holds rows 2 and 3 (two tokens
        // at one frame).
        let path = [(0, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (3, 5), (3, 6)];
        let (rows, cols) = dtw(&cost_with_path(4, 7, &path), 4, 7);
        let got: Vec<(usize, usize)> = rows.into_iter().zip(cols).collect();
        assert_eq!(got, path.to_vec());
    }

    #[test]
    fn dtw_ties_go_right_unless_strictly_cheaper() {
        // Uniform costs: from (1,1) on, the diagonal and the move right tie; ties go right, so
        // the path takes the diagonal first and then runs along the last row.
        let (rows, cols) = dtw(&[1.0; 2 * 4], 2, 4);
        assert_eq!(rows, vec![0, 1, 1, 1]);
        assert_eq!(cols, vec![0, 1, 2, 3]);
        // Whisper's quirk: when the diagonal and the move down tie (c0 == c1 < c2), the move
        // right is taken although it is costlier. [[0, 0], [1, 5]]: at the corner c0 = 0,
        // c1 = 0, c2 = 1 -> right, so the path is (0,0) (1,0) (1,1), total 6 instead of 5.
        let (rows, cols) = dtw(&[0.0, 0.0, 1.0, 5.0], 2, 2);
        assert_eq!(rows, vec![0, 1, 1]);
        assert_eq!(cols, vec![0, 0, 1]);
    }

    #[test]
    fn dtw_single_row_and_single_column() {
        let (rows, cols) = dtw(&[3.0, 1.0, 2.0], 1, 3);
        assert_eq!((rows, cols), (vec![0, 0, 0], vec![0, 1, 2]));
        let (rows, cols) = dtw(&[3.0, 1.0, 2.0], 3, 1);
        assert_eq!((rows, cols), (vec![0, 1, 2], vec![0, 0, 0]));
    }

    /// Whisper's dtw_cpu + backtrace, written out literally (f64 cost, i64 indices) to compare
    /// with on random matrices.
    fn whisper_dtw(x: &[f32], n: usize, m: usize) -> Vec<(i64, i64)> {
        let mut cost = vec![vec![f32::INFINITY; m + 1]; n + 1];
        let mut trace = vec![vec![-1i32; m + 1]; n + 1];
        cost[0][0] = 0.0;
        for j in 1..=m {
            for i in 1..=n {
                let (c0, c1, c2) = (cost[i - 1][j - 1], cost[i - 1][j], cost[i][j - 1]);
                let (c, t) = if c0 < c1 && c0 < c2 {
                    (c0, 0)
                } else if c1 < c0 && c1 < c2 {
                    (c1, 1)
                } else {
                    (c2, 2)
                };
                cost[i][j] = x[(i - 1) * m + j - 1] + c;
                trace[i][j] = t;
            }
        }
        trace[0].iter_mut().for_each(|t| *t = 2);
        trace.iter_mut().for_each(|r| r[0] = 1);
        let (mut i, mut j) = (n as i64, m as i64);
        let mut out = Vec::new();
        while i > 0 || j > 0 {
            out.push((i - 1, j - 1));
            match trace[i as usize][j as usize] {
                0 => {
                    i -= 1;
                    j -= 1
                }
                1 => i -= 1,
                _ => j -= 1,
            }
        }
        out.reverse();
        out
    }

    #[test]
    fn dtw_matches_a_literal_port_on_random_matrices() {
        let mut rng = 0x9E3779B97F4A7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32
        };
        for (n, m) in [(1, 1), (3, 9), (9, 3), (12, 40), (30, 200)] {
            // quantized values make ties common
            let x: Vec<f32> = (0..n * m).map(|_| (next() * 4.0).floor()).collect();
            let (rows, cols) = dtw(&x, n, m);
            let want = whisper_dtw(&x, n, m);
            let got: Vec<(i64, i64)> = rows.iter().zip(&cols).map(|(r, c)| (*r as i64, *c as i64)).collect();
            assert_eq!(got, want, "{n}x{m}");
            // monotonic, starts at (0,0), ends at the corner, steps of at most one
            assert_eq!(got[0], (0, 0));
            assert_eq!(*got.last().unwrap(), (n as i64 - 1, m as i64 - 1));
            for w in got.windows(2) {
                let (di, dj) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                assert!((di, dj) == (1, 1) || (di, dj) == (1, 0) || (di, dj) == (0, 1));
            }
        }
    }

    // ---- median filter

    fn naive_median(row: &[f32], width: usize) -> Vec<f32> {
        let r = width / 2;
        let n = row.len();
        // explicit reflect padding, then sorted windows
        let mut padded: Vec<f32> = (1..=r).rev().map(|k| row[k]).collect();
        padded.extend_from_slice(row);
        padded.extend((1..=r).map(|k| row[n - 1 - k]));
        (0..n)
            .map(|j| {
                let mut w = padded[j..j + width].to_vec();
                w.sort_by(f32::total_cmp);
                w[r]
            })
            .collect()
    }

    #[test]
    fn median_filter_matches_a_naive_reflect_padded_filter() {
        let mut seed = 7u32;
        for len in [4usize, 5, 7, 8, 31] {
            let rows: Vec<f32> = (0..3 * len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    ((seed >> 16) % 100) as f32 / 10.0
                })
                .collect();
            let mut got = rows.clone();
            median_filter(&mut got, len, 7);
            let want: Vec<f32> = rows.chunks(len).flat_map(|r| naive_median(r, 7)).collect();
            assert_eq!(got, want, "rows of {len}");
        }
    }

    #[test]
    fn median_filter_edges_reflect_without_repeating_the_edge() {
        // [9, 0, 0, 0, 0, 0]: reflect padding gives 0 0 0 | 9 0 0 0 0 0 | ..., never a second 9.
        let mut row = vec![9.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        median_filter(&mut row, 6, 3);
        assert_eq!(row, vec![0.0; 6]);
        // [1, 5, 2, 8]: width 3 at j=0 sees (5, 1, 5) -> 5; at the end (2, 8, 2) -> 2.
        let mut row = vec![1.0, 5.0, 2.0, 8.0];
        median_filter(&mut row, 4, 3);
        assert_eq!(row, vec![5.0, 2.0, 5.0, 2.0]);
        // Rows no longer than width / 2 are left alone (Whisper returns them unchanged).
        let mut short = vec![3.0, 1.0, 2.0];
        median_filter(&mut short, 3, 7);
        assert_eq!(short, vec![3.0, 1.0, 2.0]);
    }

    // ---- a toy model with words

    // 0 " And", 1 " so", 2 ",", 3 " my", 4 " fel", 5 "low", 6 ".", 7 " caf", 8/9 the two bytes
    // of "é", 10 " (", 11 "hi", 12 ")", 13/14 "京" split (E4 BA | AC), 15 "人", 16 " ¿", 17 "!?",
    // 18 eot, 19 sot, 20 <|en|>, 21 <|ja|>, 22 <|zh|>, 23 translate, 24 transcribe, 25 sot_lm,
    // 26 sot_prev, 27 nospeech, 28 notimestamps, 29.. timestamps.
    const EOT: u32 = 18;
    const SOT_SEQ: [u32; 3] = [19, 20, 24];
    const N_VOCAB: usize = 39;

    fn word_model() -> Model {
        let config = r#"{"name":"words","multilingual":true,
          "dims":{"n_mels":80,"n_audio_ctx":1500,"n_text_ctx":448,"n_text_state":4,"n_text_layer":1,"n_text_head":1,"n_vocab":39},
          "tokens":{"eot":18,"sot":19,"translate":23,"transcribe":24,"sot_lm":25,"sot_prev":26,"no_speech":27,"no_timestamps":28,"timestamp_begin":29},
          "languages":[["en",20],["ja",21],["zh",22]],"suppress_ids":[],"suppress_ids_begin":[18],
          "alignment_heads":[[0,0],[0,1]]}"#;
        let mut vocab: Vec<String> = [
            "ĠAnd", "Ġso", ",", "Ġmy", "Ġfel", "low", ".", "Ġcaf", "Ã", "©", "Ġ(", "hi", ")", "äº", "¬", "äºº",
            "ĠÂ¿", "!?", "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|ja|>", "<|zh|>", "<|translate|>",
            "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for i in 0..10 {
            vocab.push(format!("<|{:.2}|>", i as f32 * 0.02));
        }
        assert_eq!(vocab.len(), N_VOCAB);
        Model::from_meta(config.as_bytes(), vocab.join("\n").as_bytes(), b"").unwrap()
    }

    fn split(model: &Model, lang: &str, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
        split_to_word_tokens(&model.tokenizer, lang, tokens)
    }

    #[test]
    fn splits_on_spaces_and_punctuation() {
        let m = word_model();
        let (words, toks) = split(&m, "en", &[0, 1, 2, 3, 4, 5, 6, EOT]);
        assert_eq!(words, vec![" And", " so", ",", " my", " fellow", ".", ""]);
        assert_eq!(toks, vec![vec![0], vec![1], vec![2], vec![3], vec![4, 5], vec![6], vec![EOT]]);
        // "!?" is not a substring of string.punctuation: it sticks to the word before.
        let (words, _) = split(&m, "en", &[0, 17, EOT]);
        assert_eq!(words, vec![" And!?", ""]);
        // ")" is punctuation on its own; "hi" has no space and joins " (".
        let (words, toks) = split(&m, "en", &[10, 11, 12, EOT]);
        assert_eq!(words, vec![" (hi", ")", ""]);
        assert_eq!(toks, vec![vec![10, 11], vec![12], vec![EOT]]);
    }

    #[test]
    fn a_character_split_over_tokens_stays_whole() {
        let m = word_model();
        // " caf" + C3 + A9 = " café": the C3 piece alone is not valid UTF-8.
        let (words, toks) = split(&m, "en", &[7, 8, 9, 1, EOT]);
        assert_eq!(words, vec![" café", " so", ""]);
        assert_eq!(toks, vec![vec![7, 8, 9], vec![1], vec![EOT]]);
        // Without spaces (ja): every complete character is a word.
        let (words, toks) = split(&m, "ja", &[13, 14, 15, 6, EOT]);
        assert_eq!(words, vec!["京", "人", ".", ""]);
        assert_eq!(toks, vec![vec![13, 14], vec![15], vec![6], vec![EOT]]);
        // zh, th, lo, my and yue split the same way; others by spaces.
        let (words, _) = split(&m, "zh", &[13, 14, 15, EOT]);
        assert_eq!(words, vec!["京", "人", ""]);
        let (words, _) = split(&m, "de", &[13, 14, 15, EOT]);
        assert_eq!(words, vec!["京人", ""]);
    }

    #[test]
    fn an_unfinished_character_does_not_swallow_the_rest() {
        let m = word_model();
        // A lone C3 (token 8) before " so": invalid in the whole text too, so it is a word of
        // its own (U+FFFD) and the split goes on.
        let (words, toks) = split(&m, "ja", &[8, 1, EOT]);
        assert_eq!(words, vec!["\u{FFFD}", " so", ""]);
        assert_eq!(toks, vec![vec![8], vec![1], vec![EOT]]);
    }

    // ---- punctuation

    fn timing(word: &str, tokens: &[u32], start: f64, end: f64) -> WordTiming {
        WordTiming { word: word.into(), tokens: tokens.to_vec(), start, end, probability: 0.9 }
    }

    #[test]
    fn merges_punctuation_like_whisper() {
        let mut a = vec![
            timing(" ¿", &[16], 0.0, 0.1),
            timing(" And", &[0], 0.1, 0.5),
            timing(" so", &[1], 0.5, 0.8),
            timing(",", &[2], 0.8, 1.0),
            timing(" (", &[10], 1.0, 1.1),
            timing(" my", &[3], 1.1, 1.3),
            timing(")", &[12], 1.3, 1.4),
            timing(".", &[6], 1.4, 1.5),
        ];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let words: Vec<&str> = a.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, vec!["", " ¿ And", " so,", "", "", " ( my).", "", ""]);
        assert_eq!(a[1].tokens, vec![16, 0]);
        assert_eq!(a[5].tokens, vec![10, 3, 12, 6]);
        // Times and probabilities stay with the words they were computed for.
        assert_eq!((a[1].start, a[1].end), (0.1, 0.5));
        assert_eq!((a[2].start, a[2].end), (0.5, 0.8));
        assert!(a[0].tokens.is_empty() && a[3].tokens.is_empty());
    }

    #[test]
    fn no_merge_after_a_trailing_space_or_across_a_plain_word() {
        let mut a = vec![timing(" so ", &[1], 0.0, 0.5), timing(",", &[2], 0.5, 0.6), timing(" my", &[3], 0.6, 0.9)];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let words: Vec<&str> = a.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, vec![" so ", ",", " my"]);
        // A prepended mark at the very end has nothing to join.
        let mut a = vec![timing(" my", &[3], 0.0, 0.5), timing(" (", &[10], 0.5, 0.6)];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        assert_eq!(a[1].word, " (");
    }

    // ---- window and segment post-processing

    #[test]
    fn long_words_are_cut_at_sentence_ends() {
        // durations 0.2, 0.2, 2.0 ("." ), 2.0 (word after ".") -> median of nonzero (0.2, 0.2,
        // 0.2, 2.0, 2.0) = 0.2, max 0.4.
        let mut a = vec![
            timing(" a", &[0], 0.0, 0.2),
            timing(" b", &[1], 0.2, 0.4),
            timing(".", &[6], 0.4, 2.4),
            timing(" c", &[3], 2.4, 4.4),
            timing(" d", &[3], 4.4, 4.6),
            timing(" e", &[3], 4.6, 4.6),
        ];
        let (median, max) = truncate_long_words_at_sentence_ends(&mut a);
        assert!((median - 0.2).abs() < 1e-12 && (max - 0.4).abs() < 1e-12);
        assert!((a[2].end - 0.8).abs() < 1e-12); // the mark keeps its start
        assert!((a[3].start - 4.0).abs() < 1e-12); // the next word keeps its end
        assert_eq!((a[4].start, a[4].end), (4.4, 4.6));
        // The median is capped at 0.7 s.
        let mut b = vec![timing(" a", &[0], 0.0, 3.0)];
        assert_eq!(truncate_long_words_at_sentence_ends(&mut b), (0.7, 1.4));
        // No nonzero duration: nothing is touched.
        let mut c = vec![timing(" a", &[0], 1.0, 1.0), timing(".", &[6], 1.0, 1.0)];
        assert_eq!(truncate_long_words_at_sentence_ends(&mut c), (0.0, 0.0));
    }

    fn starts_ends(words: &[Word]) -> Vec<(f32, f32)> {
        words.iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn words_go_to_segments_by_token_count() {
        let t1 = [29, 0, 1, 2, 30];
        let t2 = [30, 3, 4, 5, 6, 31];
        let mut segs = vec![
            SegmentSpan { start: 10.0, end: 10.9, tokens: &t1 },
            SegmentSpan { start: 11.0, end: 12.0, tokens: &t2 },
        ];
        let mut a = vec![
            timing(" And", &[0], 0.0, 0.3),
            timing(" so", &[1], 0.3, 0.6),
            timing(",", &[2], 0.6, 0.8),
            timing(" my", &[3], 1.0, 1.3),
            timing(" fellow", &[4, 5], 1.3, 1.7),
            timing(".", &[6], 1.7, 1.9),
        ];
        let (median, max) = truncate_long_words_at_sentence_ends(&mut a);
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let words = assign_words_to_segments(&a, &mut segs, EOT, 10.0, median, max, 10.0);
        let text = |ws: &[Word]| ws.iter().map(|w| w.word.clone()).collect::<Vec<_>>();
        assert_eq!(text(&words[0]), vec![" And", " so,"]);
        assert_eq!(text(&words[1]), vec![" my", " fellow."]);
        assert_eq!(starts_ends(&words[0]), vec![(10.0, 10.3), (10.3, 10.6)]);
        assert_eq!(starts_ends(&words[1]), vec![(11.0, 11.3), (11.3, 11.7)]);
        // Segments take their words' bounds.
        assert_eq!((segs[0].start, segs[0].end), (10.0, 10.6));
        assert_eq!((segs[1].start, segs[1].end), (11.0, 11.7));
        assert_eq!(get_end(&segs, &words), Some(11.7));
        assert_eq!(get_end(&segs[..1], &[vec![]]), Some(10.6));
    }

    #[test]
    fn a_long_first_word_after_a_pause_is_cut() {
        // median 0.2 (max 0.4); the first word ends 3 s after the last speech and lasts 1.6 s.
        let toks = [0, 1, 3];
        let mut segs = vec![SegmentSpan { start: 2.0, end: 3.6, tokens: &toks }];
        let a = vec![timing(" And", &[0], 1.4, 3.0), timing(" so", &[1], 3.0, 3.2), timing(" my", &[3], 3.2, 3.4)];
        let words = assign_words_to_segments(&a, &mut segs, EOT, 0.0, 0.2, 0.4, 0.0);
        // cut to max_duration before its end; the segment start (2.0) is not 0.5 s after
        // the new start, so the segment moves to the word.
        assert_eq!(starts_ends(&words[0]), vec![(2.6, 3.0), (3.0, 3.2), (3.2, 3.4)]);
        assert_eq!((segs[0].start, segs[0].end), (2.6, 3.4));

        // First and second word both long: they are split at max(end2 / 2, end2 - max).
        let mut segs = vec![SegmentSpan { start: 0.0, end: 9.0, tokens: &toks }];
        let a = vec![timing(" And", &[0], 4.0, 5.0), timing(" so", &[1], 5.0, 6.0), timing(" my", &[3], 6.0, 6.2)];
        let words = assign_words_to_segments(&a, &mut segs, EOT, 0.0, 0.2, 0.4, 0.0);
        assert_eq!(starts_ends(&words[0]), vec![(5.2, 5.6), (5.6, 6.0), (6.0, 6.2)]);
        // the segment end (9.0) is after the last word's end: the segment shrinks to it
        // (5.6 - 0.4 in f64 is 5.199999999999999, in Python too)
        assert!((segs[0].start - 5.2).abs() < 1e-12 && segs[0].end == 6.2, "{segs:?}");
    }

    #[test]
    fn segment_bounds_win_over_words_that_stick_out() {
        let toks = [0, 1];
        // The first word starts 1 s before the segment start and ends inside it; the last word
        // ends 1 s after the segment end. Last speech just before: no pause rule.
        let mut segs = vec![SegmentSpan { start: 2.0, end: 3.0, tokens: &toks }];
        let a = vec![timing(" And", &[0], 1.0, 2.3), timing(" so", &[1], 2.3, 4.0)];
        let words = assign_words_to_segments(&a, &mut segs, EOT, 0.0, 0.2, 0.4, 2.0);
        // start: max(0, min(end - median, seg.start)) = min(2.1, 2.0) = 2.0
        // end: max(start + median, seg.end) = max(2.5, 3.0) = 3.0
        assert_eq!(starts_ends(&words[0]), vec![(2.0, 2.3), (2.3, 3.0)]);
        assert_eq!((segs[0].start, segs[0].end), (2.0, 3.0));
    }

    #[test]
    fn empty_words_are_skipped_but_their_tokens_count() {
        let t1 = [0, 2];
        let t2 = [3];
        let mut segs = vec![
            SegmentSpan { start: 0.0, end: 1.0, tokens: &t1 },
            SegmentSpan { start: 1.0, end: 2.0, tokens: &t2 },
        ];
        let mut a = vec![timing(" And", &[0], 0.0, 0.4), timing(",", &[2], 0.4, 0.6), timing(" my", &[3], 1.0, 1.4)];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        // " And," has both tokens of segment 1; the emptied "," then has none and would be
        // counted in segment 2, which needs one token: it is consumed there with no output.
        let words = assign_words_to_segments(&a, &mut segs, EOT, 0.0, 0.4, 0.8, 0.0);
        assert_eq!(words[0].iter().map(|w| w.word.as_str()).collect::<Vec<_>>(), vec![" And,"]);
        assert_eq!(words[1].iter().map(|w| w.word.as_str()).collect::<Vec<_>>(), vec![" my"]);
    }

    // ---- end to end with a scripted network

    /// Keeps the sequence it has been fed (like the real cache) and returns, for each new
    /// position p, attention concentrated around frame `peak(p)`, plus logits that favour the
    /// next token of `script`.
    struct Aligner {
        seq: Vec<u32>,
        calls: usize,
        script: Vec<u32>,
        sot_len: usize,
    }

    const N_CTX: usize = 1500;
    const STRIDE: usize = 20; // frames per text row

    impl Aligner {
        fn new(script: Vec<u32>) -> Self {
            Self { seq: Vec::new(), calls: 0, script, sot_len: SOT_SEQ.len() }
        }
        fn row(&self, p: usize, head: usize) -> Vec<f32> {
            let mut w = vec![1e-4f32; N_CTX];
            if p >= self.sot_len {
                let peak = ((p - self.sot_len) * STRIDE + STRIDE / 2) as f32 + head as f32;
                for (f, v) in w.iter_mut().enumerate() {
                    *v += (-((f as f32 - peak) / 4.0).powi(2)).exp();
                }
            }
            let s: f32 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= s);
            w
        }
    }

    impl Inference for Aligner {
        fn encode(&mut self, _mel: &[f32]) -> Result<(), Error> {
            Ok(())
        }
        fn decode(
            &mut self,
            tokens: &[u32],
            batch: usize,
            cache_index: &[u32],
            restart: bool,
            want_alignment: bool,
        ) -> Result<StepOutput, Error> {
            assert_eq!((batch, cache_index), (1, &[0u32][..]));
            assert!(want_alignment);
            self.calls += 1;
            if restart {
                self.seq.clear();
            }
            let p0 = self.seq.len();
            self.seq.extend_from_slice(tokens);
            let t = tokens.len();
            let mut al = Vec::with_capacity(2 * t * N_CTX);
            for h in 0..2 {
                for k in 0..t {
                    al.extend(self.row(p0 + k, h));
                }
            }
            // logits: the next scripted token (after the prompt) gets 3.0, eot 1.0, others 0.
            let mut logits = vec![0.0f32; N_VOCAB];
            let n_text_seen = self.seq.len() - (self.sot_len + 1);
            if let Some(next) = self.script.get(n_text_seen) {
                logits[*next as usize] = 3.0;
            }
            logits[EOT as usize] = 1.0;
            Ok(StepOutput { logits, alignment: Some(al) })
        }
    }

    fn expected_prob() -> f64 {
        // softmax over the 18 text tokens: one at 3.0, 17 at 0.0 (eot is outside the text vocab)
        let e3 = 3.0f64.exp();
        e3 / (e3 + 17.0)
    }

    #[test]
    fn aligns_a_window_end_to_end() {
        let model = word_model();
        let text = vec![0, 1, 2, 3, 4, 5, 6]; // " And so, my fellow."
        let mut nn = Aligner::new(text.clone());
        let lp = vec![-0.1f32; text.len()];
        let words = align_words(&mut nn, &model, &SOT_SEQ, &text, 600, 5.0, TokenProbs::Logprobs(&lp)).unwrap();
        assert_eq!(nn.calls, 1);
        assert_eq!(nn.seq, [&SOT_SEQ[..], &[28], &text[..], &[EOT]].concat());
        let names: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(names, vec![" And", " so,", " my", " fellow."]);
        for w in &words {
            assert!(w.start >= 5.0 && w.end <= 5.0 + 12.0 && w.start < w.end, "{w:?}");
            assert!((w.probability - (-0.1f32).exp()).abs() < 1e-6);
        }
        for pair in words.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{pair:?}");
        }
        // Row r (r = 0 for <|notimestamps|>, r = k + 1 for text token k) peaks at frame
        // 20 r + 10, so the path enters row r near frame 20 r: the word of text tokens
        // a..b runs from about 0.4 a s to 0.4 b s.
        let expect = [(0.0, 0.4), (0.4, 0.8), (1.2, 1.6), (1.6, 2.4)];
        for (w, (s, e)) in words.iter().zip(expect) {
            assert!((w.start - 5.0 - s).abs() <= 0.1 && (w.end - 5.0 - e).abs() <= 0.1, "{w:?} vs {s}..{e}");
        }
    }

    #[test]
    fn teacher_forcing_gives_whisper_probabilities_and_the_same_times() {
        let model = word_model();
        let text = vec![0, 1, 2, 3, 4, 5, 6];
        let mut one = Aligner::new(text.clone());
        let lp = vec![-0.1f32; text.len()];
        let a = find_alignment(&mut one, &model, &SOT_SEQ, &text, 600, TokenProbs::Logprobs(&lp)).unwrap();
        let mut steps = Aligner::new(text.clone());
        let b = find_alignment(&mut steps, &model, &SOT_SEQ, &text, 600, TokenProbs::TeacherForced).unwrap();
        assert_eq!(steps.calls, text.len() + 2);
        assert_eq!(steps.seq, one.seq);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.word, &x.tokens, x.start, x.end), (&y.word, &y.tokens, y.start, y.end));
            assert!((y.probability - expected_prob()).abs() < 1e-9, "{y:?}");
        }
    }

    #[test]
    fn add_word_timestamps_over_two_segments() {
        let model = word_model();
        let t1 = [29, 0, 1, 2, 33];
        let t2 = [33, 3, 4, 5, 6, 38];
        let text: Vec<u32> = t1.iter().chain(&t2).copied().filter(|t| *t < EOT).collect();
        let mut nn = Aligner::new(text.clone());
        let seek = 1000;
        let mut segs = vec![
            SegmentSpan { start: faster_whisper_time(seek, 0), end: faster_whisper_time(seek, 4), tokens: &t1 },
            SegmentSpan { start: faster_whisper_time(seek, 4), end: faster_whisper_time(seek, 9), tokens: &t2 },
        ];
        let lp = vec![-0.2f32; text.len()];
        let words =
            add_word_timestamps(&mut nn, &model, &SOT_SEQ, &mut segs, seek, 600, TokenProbs::Logprobs(&lp), 9.5).unwrap();
        let names = |ws: &[Word]| ws.iter().map(|w| w.word.clone()).collect::<Vec<_>>();
        assert_eq!(names(&words[0]), vec![" And", " so,"]);
        assert_eq!(names(&words[1]), vec![" my", " fellow."]);
        // segment bounds follow the words
        assert_eq!(segs[0].start, words[0][0].start as f64);
        assert_eq!(segs[0].end, round2(words[0][1].end as f64));
        assert_eq!(segs[1].end, round2(words[1][1].end as f64));
        assert!(words[0][0].start >= 10.0 && words[1][1].end <= 16.0);
        assert_eq!(get_end(&segs, &words), Some(round2(words[1][1].end as f64)));
        // nothing to align: no call
        let mut idle = Aligner::new(vec![]);
        let none = find_alignment(&mut idle, &model, &SOT_SEQ, &[], 600, TokenProbs::TeacherForced).unwrap();
        assert!(none.is_empty() && idle.calls == 0);
    }

    #[test]
    fn the_language_token_picks_the_split() {
        let model = word_model();
        let text = vec![13, 14, 15, 6]; // 京人.
        let ja = [19, 21, 24];
        let mut nn = Aligner::new(text.clone());
        let lp = vec![0.0f32; text.len()];
        let words = align_words(&mut nn, &model, &ja, &text, 600, 0.0, TokenProbs::Logprobs(&lp)).unwrap();
        let names: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(names, vec!["京", "人."]);
        assert!(words[0].end <= words[1].start);
    }

    #[test]
    fn alignment_matrix_standardizes_over_tokens_and_drops_prompt_and_eot_rows() {
        // 1 head, 4 tokens, 5 positions of which 4 are audio frames.
        let w: Vec<f32> = vec![
            1.0, 1.0, 1.0, 1.0, 6.0, //
            4.0, 0.0, 0.0, 0.0, 9.0, //
            0.0, 4.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 2.0, 2.0, 0.0,
        ];
        let m = alignment_matrix(&w, 1, 4, 5, 4, 1);
        assert_eq!(m.len(), 2 * 4); // rows 1 and 2
        // After renormalizing: rows [.25 .25 .25 .25], [1 0 0 0], [0 1 0 0], [0 0 .5 .5].
        // Frame 0 column: (.25, 1, 0, 0): mean .3125, population std 0.4135...
        let col = [0.25f64, 1.0, 0.0, 0.0];
        let mean = col.iter().sum::<f64>() / 4.0;
        let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        let z1 = ((1.0 - mean) / std) as f32;
        // The median filter (width 7) runs on rows of 4 (> 3): compare with the naive filter.
        let mut std_rows = [0.0f32; 16];
        let rows = [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]];
        for f in 0..4 {
            let c: Vec<f64> = rows.iter().map(|r| r[f]).collect();
            let mean = c.iter().sum::<f64>() / 4.0;
            let std = (c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
            for t in 0..4 {
                std_rows[t * 4 + f] = ((c[t] - mean) / std) as f32;
            }
        }
        assert!((std_rows[4] - z1).abs() < 1e-6);
        let want: Vec<f32> = std_rows.chunks(4).skip(1).take(2).flat_map(|r| naive_median(r, 7)).collect();
        for (g, w) in m.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{m:?} vs {want:?}");
        }
    }
}
