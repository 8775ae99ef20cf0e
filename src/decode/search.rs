//! One window's search: its live rows, Whisper's logit filters, and the choice of each row's
//! next token (greedy, sampling or beam search). The drivers in `mod.rs` own the network calls,
//! so several windows can share one batch; a window's search only sees its own rows' logits.

use super::filters::{apply_timestamp_rules, log_sum_exp_from, log_sum_exp_scaled, max_of, suppress};
use super::{compression_ratio, top_k, DecodeOptions, DecodeResult, Rng, Strategy};
use crate::error::Error;
use crate::model::{Model, SECONDS_PER_TIMESTAMP};

/// One live row of a window.
#[derive(Clone)]
struct Row {
    sampled: Vec<u32>,
    logprobs: Vec<f32>,
    sum_logprob: f32,
}

pub(super) struct Search<'a> {
    model: &'a Model,
    opts: &'a DecodeOptions,
    rows: Vec<Row>,
    finished: Vec<Row>,
    /// Rows the window starts with (1 greedy, `best_of` sampling, `beam_size` beams).
    pub n_rows: usize,
    temperature: f32,
    max_candidates: usize,
    max_initial: Option<u32>,
    rng: Rng,
    no_speech_prob: f32,
    /// No row continues: the window's result is final.
    pub done: bool,
    log_norms: Vec<f32>,
    maxima: Vec<f32>,
    sample_norms: Vec<f32>,
}

impl<'a> Search<'a> {
    pub fn new(model: &'a Model, opts: &'a DecodeOptions, no_speech_prob: f32) -> Self {
        let (n_rows, temperature) = match opts.strategy {
            Strategy::Greedy => (1, 0.0),
            Strategy::Sample { temperature, best_of } => (best_of.max(1), temperature),
            Strategy::Beam { beam_size, .. } => (beam_size.max(1), 0.0),
        };
        let max_candidates = match opts.strategy {
            Strategy::Beam { beam_size, patience } => ((beam_size as f32) * patience).round().max(1.0) as usize,
            _ => n_rows,
        };
        let max_initial = (opts.max_initial_timestamp_s > 0.0)
            .then(|| (opts.max_initial_timestamp_s / SECONDS_PER_TIMESTAMP).round() as u32);
        Self {
            model,
            opts,
            rows: vec![Row { sampled: Vec::new(), logprobs: Vec::new(), sum_logprob: 0.0 }; n_rows],
            finished: Vec::new(),
            n_rows,
            temperature,
            max_candidates,
            max_initial,
            rng: Rng(opts.seed | 1),
            no_speech_prob,
            done: false,
            log_norms: Vec::with_capacity(n_rows),
            maxima: Vec::with_capacity(n_rows),
            sample_norms: Vec::with_capacity(n_rows),
        }
    }

    /// Live rows: the window's rows in the step's logits, in order.
    pub fn live(&self) -> usize {
        self.rows.len()
    }

    /// Filters `logits` (`vocab` per live row) and chooses each continuing row's next token:
    /// `(row it continues, token)`, in the order of the next step's rows. Sets `done` when no
    /// row continues or the beam has its candidates.
    pub fn choose(&mut self, logits: &mut [f32]) -> Vec<(usize, u32)> {
        let (model, opts) = (self.model, self.opts);
        let sp = *model.special();
        let vocab = model.config.dims.n_vocab;
        let temperature = self.temperature;
        // Filter each row's logits; row r's log-probabilities are then
        // `logits[r] - log_norms[r]`, never materialised: argmax, top-k and sampling read the
        // logits (51 865 per row for base) directly.
        //
        // A token is scored by the unscaled log-softmax even when it was drawn at temperature
        // T > 0 from `logits / T`, as openai/whisper (`GreedyDecoder.update`: `log_softmax` of
        // the unscaled logits) and CTranslate2 (`RandomSampler` returns the unscaled
        // log-probability of the drawn id) do: `avg_logprob` is what the fallback thresholds
        // and the `best_of` ranking read, and the scaled one is much closer to 0 at low T.
        self.log_norms.clear();
        self.maxima.clear();
        self.sample_norms.clear();
        for (r, row) in self.rows.iter().enumerate() {
            let l = &mut logits[r * vocab..(r + 1) * vocab];
            if opts.suppress_blank && row.sampled.is_empty() {
                suppress(l, &model.config.suppress_ids_begin);
            }
            suppress(l, &model.suppress);
            let max = if opts.without_timestamps {
                max_of(l)
            } else {
                apply_timestamp_rules(l, &row.sampled, &sp, self.max_initial)
            };
            if temperature > 0.0 {
                self.sample_norms.push(log_sum_exp_scaled(l, max, temperature));
            }
            self.log_norms.push(log_sum_exp_from(l, max));
            self.maxima.push(max);
        }
        let row_logits = |r: usize| &logits[r * vocab..(r + 1) * vocab];

        // Choose the next rows: (source row, token, new sum).
        let beam = matches!(opts.strategy, Strategy::Beam { .. });
        let next: Vec<(usize, u32, f32)> = match opts.strategy {
            Strategy::Beam { beam_size, .. } => {
                beam_step(&self.rows, row_logits, &self.log_norms, beam_size, sp.eot, &mut self.finished, self.max_candidates)
            }
            _ => {
                let (rng, norms, maxima, sample_norms) = (&mut self.rng, &self.log_norms, &self.maxima, &self.sample_norms);
                self.rows
                    .iter()
                    .enumerate()
                    .map(|(r, row)| {
                        let l = row_logits(r);
                        let t = if temperature > 0.0 {
                            rng.sample(l, temperature, sample_norms[r])
                        } else {
                            // The first index of the row's maximum, already known: a plain
                            // compare pass instead of argmax's data-dependent one.
                            l.iter().position(|x| *x == maxima[r]).unwrap_or(0) as u32
                        };
                        (r, t, row.sum_logprob + (l[t as usize] - norms[r]))
                    })
                    .collect()
            }
        };

        let mut next_rows = Vec::with_capacity(next.len());
        let mut chosen = Vec::with_capacity(next.len());
        for (src, token, sum) in next {
            let mut row = self.rows[src].clone();
            let token_logprob = sum - row.sum_logprob;
            row.sum_logprob = sum;
            if token == sp.eot {
                if !beam {
                    self.finished.push(row);
                }
                continue;
            }
            row.sampled.push(token);
            row.logprobs.push(token_logprob);
            next_rows.push(row);
            chosen.push((src, token));
        }
        self.rows = next_rows;
        self.done = self.rows.is_empty() || (beam && self.finished.len() >= self.max_candidates);
        chosen
    }

    /// The window's result: the best finished row (rows cut off by the length limit still
    /// compete, as in Whisper's `finalize`).
    pub fn finish(self) -> Result<DecodeResult, Error> {
        let Search { model, n_rows, max_candidates, mut finished, rows, temperature, no_speech_prob, .. } = self;
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
