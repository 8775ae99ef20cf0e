//! Steps 1–3: the teacher-forced pass, the alignment matrix (standardize, median filter,
//! average heads) and DTW, giving each token its window-relative time.

use super::{TokenProbs, WordTiming, MEDIAN_FILTER_WIDTH, TOKENS_PER_SECOND};
use crate::error::Error;
use crate::model::{Model, INPUT_STRIDE};
use crate::nn::Inference;
use super::split::split_to_word_tokens;

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
