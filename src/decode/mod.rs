//! The token loop over one 30 s window: prompt, language detection, greedy / sampling /
//! beam search, with Whisper's logit filters. Follows openai/whisper `whisper/decoding.py`
//! (`DecodingTask`, `GreedyDecoder`, `BeamSearchDecoder`), restructured around a
//! batch of rows whose self-attention cache lives in the inference backend: each step
//! sends only the newest token of each live row and `cache_index`, the row of the previous
//! step it continues, so finished rows drop out and beams reorder without moving the cache.

pub mod filters;
pub mod options;

pub use options::{DecodeOptions, Strategy, Task};

use crate::error::Error;
use crate::model::{Model, SECONDS_PER_TIMESTAMP};
use crate::nn::Inference;
use filters::{apply_timestamp_rules, log_sum_exp, log_sum_exp_from, log_sum_exp_scaled, max_of, suppress};

/// The outcome of decoding one window.
#[derive(Debug, Clone)]
pub struct DecodeResult {
    /// Sampled tokens, without the prompt and without end-of-text.
    pub tokens: Vec<u32>,
    /// Log-probability of each of `tokens` when it was chosen, from the unscaled logits even
    /// when it was drawn at temperature > 0 (as openai/whisper and CTranslate2 score it).
    pub token_logprobs: Vec<f32>,
    pub text: String,
    /// Sum of the chosen tokens' log-probabilities (end-of-text included).
    pub sum_logprob: f32,
    /// `sum_logprob / (len(tokens) + 1)`, as Whisper reports it.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the `<|startoftranscript|>` position.
    pub no_speech_prob: f32,
    pub temperature: f32,
    /// Text bytes / zlib-compressed bytes: > 2.4 means the text repeats itself.
    pub compression_ratio: f32,
}

/// Language probabilities at `<|startoftranscript|>`, most likely first.
/// Must follow an `encode`.
pub fn detect_language(
    nn: &mut dyn Inference,
    model: &Model,
) -> Result<Vec<(String, f32)>, Error> {
    if model.config.languages.is_empty() {
        return Ok(vec![("en".to_string(), 1.0)]);
    }
    let out = nn.decode(&[model.special().sot], 1, &[0], true, false)?;
    Ok(language_probs(model, &out.logits))
}

fn language_probs(model: &Model, logits: &[f32]) -> Vec<(String, f32)> {
    let langs = &model.config.languages;
    let max = langs.iter().map(|(_, id)| logits[*id as usize]).fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = langs.iter().map(|(_, id)| (logits[*id as usize] - max).exp()).sum();
    let mut probs: Vec<(String, f32)> = langs
        .iter()
        .map(|(code, id)| (code.clone(), (logits[*id as usize] - max).exp() / sum))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    probs
}

/// The tokens Whisper starts a window with, after `<|startoftranscript|>`.
fn task_tokens(model: &Model, opts: &DecodeOptions) -> Vec<u32> {
    let sp = model.special();
    let mut rest = Vec::new();
    if model.config.multilingual {
        if let Some(lang) = opts.language {
            rest.push(lang);
        }
        rest.push(match opts.task {
            Task::Transcribe => sp.transcribe,
            Task::Translate => sp.translate,
        });
    }
    if opts.without_timestamps {
        rest.push(sp.no_timestamps);
    }
    rest
}

/// One live row of the batch.
#[derive(Clone)]
struct Row {
    sampled: Vec<u32>,
    logprobs: Vec<f32>,
    sum_logprob: f32,
}

/// Decodes the window last passed to `nn.encode`.
pub fn decode_window(
    nn: &mut dyn Inference,
    model: &Model,
    opts: &DecodeOptions,
) -> Result<DecodeResult, Error> {
    let sp = *model.special();
    let n_ctx = model.config.dims.n_text_ctx;
    let vocab = model.config.dims.n_vocab;

    // Prompt: [<|startofprev|> previous…] <|startoftranscript|> | task tokens. The first part
    // ends at sot, whose logits give the no-speech probability.
    let mut head = Vec::new();
    if !opts.previous_tokens.is_empty() {
        let keep = (n_ctx / 2 - 1).min(opts.previous_tokens.len());
        head.push(sp.sot_prev);
        head.extend_from_slice(&opts.previous_tokens[opts.previous_tokens.len() - keep..]);
    }
    head.push(sp.sot);
    let rest = task_tokens(model, opts);
    let prompt_len = head.len() + rest.len();

    let first = nn.decode(&head, 1, &[0], true, false)?;
    let no_speech_prob = softmax_at(&first.logits[..vocab], sp.no_speech as usize);
    let mut logits = if rest.is_empty() {
        first.logits
    } else {
        nn.decode(&rest, 1, &[0], false, false)?.logits
    };

    let (n_rows, temperature) = match opts.strategy {
        Strategy::Greedy => (1, 0.0),
        Strategy::Sample { temperature, best_of } => (best_of.max(1), temperature),
        Strategy::Beam { beam_size, .. } => (beam_size.max(1), 0.0),
    };
    // Every row starts from the single prompt row: its logits serve all of them.
    if n_rows > 1 {
        logits = logits.repeat(n_rows);
    }
    let mut rows = vec![Row { sampled: Vec::new(), logprobs: Vec::new(), sum_logprob: 0.0 }; n_rows];
    // The backend's cache row of each live row: all rows start from the one prompt row.
    let mut cache_row: Vec<u32> = vec![0; n_rows];
    let mut finished: Vec<Row> = Vec::new();
    let max_candidates = match opts.strategy {
        Strategy::Beam { beam_size, patience } => ((beam_size as f32) * patience).round().max(1.0) as usize,
        _ => n_rows,
    };
    let max_initial = if opts.max_initial_timestamp_s > 0.0 {
        Some((opts.max_initial_timestamp_s / SECONDS_PER_TIMESTAMP).round() as u32)
    } else {
        None
    };
    let sample_len = opts.sample_len.min(n_ctx - prompt_len);
    let mut rng = Rng(opts.seed | 1);
    let mut log_norms = Vec::with_capacity(n_rows);
    let mut maxima = Vec::with_capacity(n_rows);
    // At temperature > 0, the normaliser of `logits[r] / temperature`, the distribution a token
    // is drawn from.
    let mut sample_norms = Vec::with_capacity(n_rows);

    for step in 0..sample_len {
        // Filter each row's logits; row r's log-probabilities are then
        // `logits[r] - log_norms[r]`, never materialised: argmax, top-k and sampling read the
        // logits (51 865 per row for base) directly.
        //
        // A token is scored by the unscaled log-softmax even when it was drawn at temperature
        // T > 0 from `logits / T`, as openai/whisper (`GreedyDecoder.update`: `log_softmax` of
        // the unscaled logits) and CTranslate2 (`RandomSampler` returns the unscaled
        // log-probability of the drawn id) do: `avg_logprob` is what the fallback thresholds
        // and the `best_of` ranking read, and the scaled one is much closer to 0 at low T.
        log_norms.clear();
        maxima.clear();
        sample_norms.clear();
        for (r, row) in rows.iter().enumerate() {
            let l = &mut logits[r * vocab..(r + 1) * vocab];
            if opts.suppress_blank && row.sampled.is_empty() {
                suppress(l, &model.config.suppress_ids_begin);
            }
            suppress(l, &model.suppress);
            let max = if opts.without_timestamps {
                max_of(l)
            } else {
                apply_timestamp_rules(l, &row.sampled, &sp, max_initial)
            };
            if temperature > 0.0 {
                sample_norms.push(log_sum_exp_scaled(l, max, temperature));
            }
            log_norms.push(log_sum_exp_from(l, max));
            maxima.push(max);
        }
        let row_logits = |r: usize| &logits[r * vocab..(r + 1) * vocab];

        // Choose the next rows: (source row, token, new sum).
        let next: Vec<(usize, u32, f32)> = match opts.strategy {
            Strategy::Beam { beam_size, .. } => {
                beam_step(&rows, row_logits, &log_norms, beam_size, sp.eot, &mut finished, max_candidates)
            }
            _ => rows
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    let l = row_logits(r);
                    let t = if temperature > 0.0 {
                        rng.sample(l, temperature, sample_norms[r])
                    } else {
                        // The first index of the row's maximum, already known: a plain compare
                        // pass instead of argmax's data-dependent one.
                        l.iter().position(|x| *x == maxima[r]).unwrap_or(0) as u32
                    };
                    (r, t, row.sum_logprob + (l[t as usize] - log_norms[r]))
                })
                .collect(),
        };

        let mut next_rows = Vec::with_capacity(next.len());
        let mut cache_index = Vec::with_capacity(next.len());
        let mut step_tokens = Vec::with_capacity(next.len());
        for (src, token, sum) in next {
            let mut row = rows[src].clone();
            let token_logprob = sum - row.sum_logprob;
            row.sum_logprob = sum;
            if token == sp.eot {
                if !matches!(opts.strategy, Strategy::Beam { .. }) {
                    finished.push(row);
                }
                continue;
            }
            row.sampled.push(token);
            row.logprobs.push(token_logprob);
            next_rows.push(row);
            cache_index.push(cache_row[src]);
            step_tokens.push(token);
        }
        rows = next_rows;
        let beam_done = matches!(opts.strategy, Strategy::Beam { .. }) && finished.len() >= max_candidates;
        if rows.is_empty() || beam_done || step + 1 == sample_len {
            break;
        }
        logits = nn.decode(&step_tokens, rows.len(), &cache_index, false, false)?.logits;
        cache_row = (0..rows.len() as u32).collect();
    }

    // Rows cut off by the length limit still compete (Whisper's `finalize`).
    if finished.len() < n_rows.min(max_candidates).max(1) {
        let mut live = rows;
        live.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
        finished.extend(live.into_iter().take(n_rows.max(1) - finished.len().min(n_rows)));
    }
    // Rank by length-normalised log-probability (Whisper's MaximumLikelihoodRanker with no
    // length penalty).
    let best = finished
        .into_iter()
        .max_by(|a, b| {
            let score = |r: &Row| r.sum_logprob / (r.sampled.len().max(1) as f32);
            score(a).total_cmp(&score(b))
        })
        .ok_or_else(|| Error::Internal("decoding produced no sequence".into()))?;

    let text = model.tokenizer.decode(&best.sampled);
    Ok(DecodeResult {
        avg_logprob: best.sum_logprob / (best.sampled.len() + 1) as f32,
        sum_logprob: best.sum_logprob,
        compression_ratio: compression_ratio(&text),
        text,
        tokens: best.sampled,
        token_logprobs: best.logprobs,
        no_speech_prob,
        temperature,
    })
}

/// One step of Whisper's beam search: each beam proposes its `beam_size + 1` best tokens;
/// the best `beam_size` unfinished proposals continue, finished ones are collected.
fn beam_step<'a>(
    rows: &[Row],
    row_logits: impl Fn(usize) -> &'a [f32],
    log_norms: &[f32],
    beam_size: usize,
    eot: u32,
    finished: &mut Vec<Row>,
    max_candidates: usize,
) -> Vec<(usize, u32, f32)> {
    let mut candidates: Vec<(usize, u32, f32)> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let l = row_logits(r);
        for t in top_k(l, beam_size + 1) {
            let cand = (r, t, row.sum_logprob + (l[t as usize] - log_norms[r]));
            // Identical prefixes (all beams at the first step) propose the same sequence once.
            let dup = candidates
                .iter()
                .any(|(r2, t2, _)| *t2 == t && rows[*r2].sampled == row.sampled);
            if !dup {
                candidates.push(cand);
            }
        }
    }
    candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut next = Vec::with_capacity(beam_size);
    let mut newly_finished = Vec::new();
    for (r, t, sum) in candidates {
        if t == eot {
            newly_finished.push(Row { sampled: rows[r].sampled.clone(), logprobs: rows[r].logprobs.clone(), sum_logprob: sum });
        } else {
            next.push((r, t, sum));
            if next.len() == beam_size {
                break;
            }
        }
    }
    for row in newly_finished {
        if finished.len() >= max_candidates {
            break;
        }
        finished.push(row);
    }
    next
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Indices of the `k` largest finite elements, largest first (ties: the earlier index first).
fn top_k(v: &[f32], k: usize) -> Vec<u32> {
    const CHUNK: usize = 16;
    let mut idx: Vec<u32> = Vec::with_capacity(k + 1);
    // The k-th best so far, once there are k: most of a row of logits loses to it, so a chunk
    // whose maximum (one vectorised pass) does not beat it is skipped whole.
    let mut floor = f32::NEG_INFINITY;
    for (c, chunk) in v.chunks(CHUNK).enumerate() {
        if idx.len() == k && chunk.iter().fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m }) <= floor {
            continue;
        }
        for (j, x) in chunk.iter().enumerate() {
            if !x.is_finite() || (idx.len() == k && *x <= floor) {
                continue;
            }
            let pos = idx.iter().position(|&i| v[i as usize] < *x).unwrap_or(idx.len());
            if pos < k {
                idx.insert(pos, (c * CHUNK + j) as u32);
                idx.truncate(k);
                if idx.len() == k {
                    floor = v[idx[k - 1] as usize];
                }
            }
        }
    }
    idx
}

fn softmax_at(logits: &[f32], i: usize) -> f32 {
    (logits[i] - log_sum_exp(logits)).exp()
}

/// Whisper's repetition check: UTF-8 length over zlib-compressed length.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = z.write_all(text.as_bytes());
    let compressed = z.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

/// xorshift64*: a small deterministic sampler for temperature > 0.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Draws a token from `softmax(logits / temperature)`, whose log-normaliser is `log_norm`
    /// ([`log_sum_exp_scaled`]).
    fn sample(&mut self, logits: &[f32], temperature: f32, log_norm: f32) -> u32 {
        let mut u = self.next_f32();
        for (i, l) in logits.iter().enumerate() {
            // The exact exp: a suppressed token (-inf) must get exactly 0.
            let p = (l / temperature - log_norm).exp();
            if u < p {
                return i as u32;
            }
            u -= p;
        }
        argmax(logits)
    }
}

#[cfg(test)]
pub mod tests;
