//! The token loop over one 30 s window: prompt, language detection, greedy / sampling /
//! beam search, with Whisper's logit filters. Follows openai/whisper `whisper/decoding.py`
//! (`DecodingTask`, `GreedyDecoder`, `BeamSearchDecoder`), restructured around a
//! batch of rows whose self-attention cache lives in the inference backend: each step
//! sends only the newest token of each live row and `cache_index`, the row of the previous
//! step it continues, so finished rows drop out and beams reorder without moving the cache.

pub mod filters;
pub mod options;
mod search;

pub use options::{DecodeOptions, Strategy, Task};

use crate::error::Error;
use crate::model::Model;
use crate::nn::Inference;
use filters::log_sum_exp;

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
    detect_language_of_first(nn, model, 1)
}

/// [`detect_language`] of the first of `n_windows` windows encoded together.
pub fn detect_language_of_first(
    nn: &mut dyn Inference,
    model: &Model,
    n_windows: usize,
) -> Result<Vec<(String, f32)>, Error> {
    if model.config.languages.is_empty() {
        return Ok(vec![("en".to_string(), 1.0)]);
    }
    let n = n_windows.max(1);
    let windows: Vec<u32> = (0..n as u32).collect();
    let out = nn.decode(&vec![model.special().sot; n], n, &windows, true, false)?;
    Ok(language_probs(model, &out.logits[..model.config.dims.n_vocab]))
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

/// The prompt, in the two calls it is sent in: `[<|startofprev|> previous…]
/// <|startoftranscript|>` (whose logits give the no-speech probability), then the task tokens.
fn prompt(model: &Model, opts: &DecodeOptions) -> (Vec<u32>, Vec<u32>) {
    let sp = model.special();
    let n_ctx = model.config.dims.n_text_ctx;
    let mut head = Vec::new();
    if !opts.previous_tokens.is_empty() {
        let keep = (n_ctx / 2 - 1).min(opts.previous_tokens.len());
        head.push(sp.sot_prev);
        head.extend_from_slice(&opts.previous_tokens[opts.previous_tokens.len() - keep..]);
    }
    head.push(sp.sot);
    (head, task_tokens(model, opts))
}

/// Decodes the window last passed to `nn.encode`.
pub fn decode_window(
    nn: &mut dyn Inference,
    model: &Model,
    opts: &DecodeOptions,
) -> Result<DecodeResult, Error> {
    let mut results = decode_windows(nn, model, std::slice::from_ref(opts))?;
    results.pop().ok_or_else(|| Error::Internal("decoding produced no result".into()))
}

/// Decodes the windows last passed to `nn.encode` together (one encode of `opts.len()`
/// windows), window `w` with `opts[w]`; the options must give every window the same prompt and
/// strategy. Each step sends every window's rows in one batch; the decoder graph groups rows
/// by audio (B / Ba rows each), so with several windows each one keeps `n_rows` rows to the
/// end, a finished row or window sending end-of-text and its logits unread. One window alone
/// sends only its live rows.
pub fn decode_windows(
    nn: &mut dyn Inference,
    model: &Model,
    opts: &[DecodeOptions],
) -> Result<Vec<DecodeResult>, Error> {
    let sp = *model.special();
    let vocab = model.config.dims.n_vocab;
    let k = opts.len();
    let Some(first_opts) = opts.first() else { return Ok(Vec::new()) };
    let (head, rest) = prompt(model, first_opts);
    if opts.iter().any(|o| o.strategy != first_opts.strategy || prompt(model, o) != (head.clone(), rest.clone())) {
        return Err(Error::Internal("windows decoded together need the same prompt and strategy".into()));
    }
    let windows: Vec<u32> = (0..k as u32).collect();
    let first = nn.decode(&head.repeat(k), k, &windows, true, false)?;
    let mut searches: Vec<search::Search> = opts
        .iter()
        .enumerate()
        .map(|(w, o)| search::Search::new(model, o, softmax_at(&first.logits[w * vocab..(w + 1) * vocab], sp.no_speech as usize)))
        .collect();
    let mut logits = if rest.is_empty() { first.logits } else { nn.decode(&rest.repeat(k), k, &windows, false, false)?.logits };

    let slots = if k > 1 { searches[0].n_rows } else { 0 };
    let sample_len = first_opts.sample_len.min(model.config.dims.n_text_ctx - head.len() - rest.len());
    // Where each window's rows start in `logits` (and in the backend's cache). After the prompt
    // each window has one row, which all of its rows continue.
    let mut starts: Vec<usize> = (0..k).collect();
    let mut after_prompt = true;
    for step in 0..sample_len {
        let mut tokens = Vec::with_capacity(k * slots.max(1));
        let mut cache_index = Vec::with_capacity(tokens.capacity());
        for (w, search) in searches.iter_mut().enumerate() {
            let before = tokens.len();
            let at = starts[w];
            if !search.done {
                let chosen = if after_prompt {
                    let mut l = logits[at * vocab..(at + 1) * vocab].repeat(search.live());
                    search.choose(&mut l)
                } else {
                    search.choose(&mut logits[at * vocab..(at + search.live()) * vocab])
                };
                for (src, token) in chosen {
                    tokens.push(token);
                    cache_index.push((at + if after_prompt { 0 } else { src }) as u32);
                }
            }
            while tokens.len() - before < slots {
                tokens.push(sp.eot);
                cache_index.push(at as u32);
            }
        }
        if searches.iter().all(|s| s.done) || step + 1 == sample_len {
            break;
        }
        logits = nn.decode(&tokens, tokens.len(), &cache_index, false, false)?.logits;
        let mut next = 0;
        for (w, search) in searches.iter().enumerate() {
            starts[w] = next;
            next += if slots > 0 { slots } else { search.live() };
        }
        after_prompt = false;
    }
    searches.into_iter().map(search::Search::finish).collect()
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
