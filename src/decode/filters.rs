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

/// log-softmax of a row, into `out`.
pub fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let log_sum = max + sum.ln();
    out.clear();
    out.extend(logits.iter().map(|l| l - log_sum));
}

/// Whisper's timestamp rules for one row. `sampled`: tokens sampled so far in this window
/// (after the prompt). `max_initial_timestamp_index`: the last allowed first timestamp.
pub fn apply_timestamp_rules(
    logits: &mut [f32],
    sampled: &[u32],
    special: &SpecialTokens,
    max_initial_timestamp_index: Option<u32>,
) {
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
    let mut logprobs = Vec::with_capacity(n);
    log_softmax(logits, &mut logprobs);
    let ts_max = logprobs[ts_begin..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if ts_max.is_finite() {
        let ts_logsumexp =
            ts_max + logprobs[ts_begin..].iter().map(|l| (l - ts_max).exp()).sum::<f32>().ln();
        let text_max = logprobs[..ts_begin].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_logsumexp > text_max {
            logits[..ts_begin].fill(f32::NEG_INFINITY);
        }
    }
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
        apply_timestamp_rules(&mut l, &[15, 2], &SP, None);
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
        apply_timestamp_rules(&mut l, &[15, 2], &SP, None);
        assert!(allowed(&l).iter().all(|&t| t >= 14));
    }

    #[test]
    fn suppress_and_log_softmax() {
        let mut l = vec![1.0, 2.0, 3.0];
        suppress(&mut l, &[1, 7]);
        assert_eq!(l[1], f32::NEG_INFINITY);
        let mut lp = Vec::new();
        log_softmax(&l, &mut lp);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
