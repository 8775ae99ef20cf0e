//! Punctuation, long words and segments.

use super::*;

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
