//! Punctuation merging, Whisper's clamps for over-long words, and the words of each segment.

use super::split::py_strip;
use super::{round2, SegmentSpan, Word, WordTiming};

const SENTENCE_END_MARKS: &str = ".。!！?？";

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
