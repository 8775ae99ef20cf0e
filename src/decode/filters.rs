//! Logit filters applied before each token is chosen, in Whisper's order: suppress blank,
//! suppress tokens, timestamp rules. They mask `&mut [f32]` in place (one row of logits).
//! Reference: openai/whisper `whisper/decoding.py` (`SuppressBlank`, `SuppressTokens`,
//! `ApplyTimestampRules`).

use crate::model::SpecialTokens;

pub fn suppress(logits: &mut [f32], ids: &[u32]) {
    for &id in ids {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// e^x, branch-free so that the compiler vectorises the loops over a row of logits (libm's
/// `expf` is a call per element). Cephes' `expf` polynomial after reducing x by ln 2: relative
/// error below 3e-7 on [-87, 88]. Smaller x, `-inf` included, gives e^-87 ≈ 1.6e-38 instead of
/// 0, which no row sum can notice next to its maximum's e^0 = 1.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

const LANES: usize = 8;

/// The largest element (`-inf` for an empty row).
pub fn max_of(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = if *x > *a { *x } else { *a };
        }
    }
    rest.iter().chain(&acc).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// log Σ e^v, the normaliser of a row's log-softmax: `-inf` when every element is `-inf`.
pub fn log_sum_exp(v: &[f32]) -> f32 {
    log_sum_exp_from(v, max_of(v))
}

/// [`log_sum_exp`] of a row whose maximum (`max_of(v)`) is already known.
pub fn log_sum_exp_from(v: &[f32], max: f32) -> f32 {
    if !max.is_finite() {
        return max;
    }
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += exp_approx(x - max);
        }
    }
    let sum: f32 = acc.iter().sum::<f32>() + rest.iter().map(|x| exp_approx(x - max)).sum::<f32>();
    max + sum.ln()
}

/// log Σ e^(v / temperature), the normaliser of the distribution sampled at `temperature`,
/// for a row whose (unscaled) maximum is `max`. Divides each element on the fly, so the row
/// itself keeps the unscaled logits that the score is taken from.
pub fn log_sum_exp_scaled(v: &[f32], max: f32, temperature: f32) -> f32 {
    let max = max / temperature;
    if !max.is_finite() {
        return max;
    }
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += exp_approx(x / temperature - max);
        }
    }
    let sum: f32 = acc.iter().sum::<f32>() + rest.iter().map(|x| exp_approx(x / temperature - max)).sum::<f32>();
    max + sum.ln()
}

/// Whisper's timestamp rules for one row. `sampled`: tokens sampled so far in this window
/// (after the prompt). `max_initial_timestamp_index`: the last allowed first timestamp.
/// Returns the row's maximum afterwards (it has to look at every element anyway; the caller's
/// log-normaliser needs it).
pub fn apply_timestamp_rules(
    logits: &mut [f32],
    sampled: &[u32],
    special: &SpecialTokens,
    max_initial_timestamp_index: Option<u32>,
) -> f32 {
    let ts_begin = special.timestamp_begin as usize;
    let eot = special.eot as usize;
    let n = logits.len();
    logits[special.no_timestamps as usize] = f32::NEG_INFINITY;

    let is_ts = |t: u32| t >= special.timestamp_begin;
    // Timestamps come in pairs, except directly before end-of-text.
    let last_was_timestamp = sampled.last().is_some_and(|t| is_ts(*t));
    let penultimate_was_timestamp = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
    if last_was_timestamp {
        if penultimate_was_timestamp {
            logits[ts_begin..].fill(f32::NEG_INFINITY); // must be text (or eot)
        } else {
            logits[..eot].fill(f32::NEG_INFINITY); // must be a timestamp (or eot)
        }
    }

    // Timestamps never decrease; a closing timestamp may repeat the opening one only if
    // the segment is non-empty, so the next one after a pair must be strictly later.
    if let Some(&last_ts) = sampled.iter().rev().find(|t| is_ts(**t)) {
        let floor = if last_was_timestamp && !penultimate_was_timestamp {
            last_ts as usize
        } else {
            last_ts as usize + 1
        };
        logits[ts_begin..floor.min(n)].fill(f32::NEG_INFINITY);
    }

    if sampled.is_empty() {
        // The first token must be a timestamp, and not too late.
        logits[..ts_begin].fill(f32::NEG_INFINITY);
        if let Some(max_idx) = max_initial_timestamp_index {
            let last_allowed = ts_begin + max_idx as usize;
            if last_allowed + 1 < n {
                logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
            }
        }
    }

    // If the timestamps together are more likely than any single text token, take a timestamp.
    // (Whisper compares log-probabilities; both sides share the row's normaliser, so logits
    // compare the same, and only the 1 501 timestamps need an exp.)
    let (ts_max, text_max) = (max_of(&logits[ts_begin..]), max_of(&logits[..ts_begin]));
    if ts_max.is_finite() && log_sum_exp_from(&logits[ts_begin..], ts_max) > text_max {
        logits[..ts_begin].fill(f32::NEG_INFINITY);
        return ts_max;
    }
    ts_max.max(text_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A toy vocabulary: text 0..5, eot 5, specials 6..13, timestamps 14..24.
    const SP: SpecialTokens = SpecialTokens {
        eot: 5,
        sot: 6,
        translate: 7,
        transcribe: 8,
        sot_lm: 9,
        sot_prev: 10,
        no_speech: 11,
        no_timestamps: 12,
        timestamp_begin: 14,
    };
    const V: usize = 24;

    /// Logits as the loop hands them over: control tokens already suppressed.
    fn fresh() -> Vec<f32> {
        let mut l = vec![0.0; V];
        l[6..14].fill(f32::NEG_INFINITY);
        l
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, _)| i).collect()
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let mut l = fresh();
        apply_timestamp_rules(&mut l, &[], &SP, Some(3));
        assert_eq!(allowed(&l), vec![14, 15, 16, 17]);
    }

    #[test]
    fn after_a_lone_timestamp_comes_text_and_after_a_pair_too() {
        // [ts] → text or eot (penultimate counts as timestamp when there is none)
        let mut l = fresh();
        apply_timestamp_rules(&mut l, &[15], &SP, None);
        assert!(allowed(&l).iter().all(|&t| t <= 5), "{:?}", allowed(&l));
        // [ts, text] → text, eot, or a timestamp ≥ the opening one
        let mut l = fresh();
        l[..5].fill(3.0); // text clearly more likely than all timestamps together
        assert_eq!(apply_timestamp_rules(&mut l, &[15, 2], &SP, None), 3.0, "the row's maximum");
        let a = allowed(&l);
        assert!(a.contains(&2) && a.contains(&16) && !a.contains(&14) && !a.contains(&12));
        // [ts, text, ts] → a timestamp (opening the next segment, ≥ the last) or eot
        let mut l = fresh();
        apply_timestamp_rules(&mut l, &[15, 2, 17], &SP, None);
        let a = allowed(&l);
        assert!(a.iter().all(|&t| t == 5 || t >= 17), "{a:?}");
        assert!(a.contains(&17) && !a.contains(&16));
        // [ts, text, ts, ts] → text
        let mut l = fresh();
        apply_timestamp_rules(&mut l, &[15, 2, 17, 17], &SP, None);
        assert!(allowed(&l).iter().all(|&t| t <= 5));
    }

    #[test]
    fn likely_timestamps_win_over_text() {
        let mut l = fresh();
        for t in 14..V {
            l[t] = 2.0; // each timestamp is more likely than each text token
        }
        let max = apply_timestamp_rules(&mut l, &[15, 2], &SP, None);
        assert!(allowed(&l).iter().all(|&t| t >= 14));
        assert_eq!(max, max_of(&l));
    }

    #[test]
    fn exp_approx_is_close_to_exp() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp_approx(x), x.exp());
            assert!(((got - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert!(exp_approx(f32::NEG_INFINITY) < 1e-37 && exp_approx(-1000.0) < 1e-37);
    }

    #[test]
    fn log_sum_exp_matches_the_plain_sum() {
        let v: Vec<f32> = (0..51_865).map(|i| ((i * 7919 % 1000) as f32) / 40.0 - 12.0).collect();
        let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let plain = max as f64 + v.iter().map(|x| ((x - max) as f64).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&v) as f64 - plain).abs() < 1e-4, "{} vs {plain}", log_sum_exp(&v));
        let mut masked = v.clone();
        masked[..51_000].fill(f32::NEG_INFINITY);
        let tail_max = masked.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let tail = tail_max as f64 + v[51_000..].iter().map(|x| ((x - tail_max) as f64).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&masked) as f64 - tail).abs() < 1e-4);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
        assert_eq!(max_of(&v[..13]), v[..13].iter().copied().fold(f32::NEG_INFINITY, f32::max));
    }

    #[test]
    fn suppress_and_normalise() {
        let mut l = vec![1.0, 2.0, 3.0];
        suppress(&mut l, &[1, 7]);
        assert_eq!(l[1], f32::NEG_INFINITY);
        let norm = log_sum_exp(&l);
        let total: f32 = l.iter().map(|x| (x - norm).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
