//! The speech regions glued together, and times in that glued audio mapped back to the
//! original's, as faster-whisper 1.2.1 does (`collect_chunks`, `SpeechTimestampsMap`,
//! `restore_speech_timestamps`): a time belongs to the region whose glued end follows it, and
//! gets the silence removed before that region added. Words are mapped by the region of their
//! midpoint (so both ends move together), and a segment with words then spans its first to its
//! last word; without words, a segment end that falls exactly on a region's end stays in that
//! region instead of jumping over the next silence. Mapped times are rounded to 0.01 s.
//!
//! Differences from faster-whisper, for times that would otherwise fall in removed silence:
//! - a segment without words that crosses from one region into the next, with no more than
//!   [`EDGE_SLACK_S`] + the padding of it in the first region, starts where the next region
//!   starts (and, the other way round, one that reaches that little into the next region ends
//!   where its own region ends). The padding is what VAD judged not to be speech, and Whisper's
//!   segment boundaries are coarse: faster-whisper puts such a segment's start in the padding
//!   after the previous speech, e.g. at 11.0 s when the words begin after 40 s of silence at
//!   51 s (tests/e2e/vad.rs);
//! - words (and so segments with words) are kept inside the region their midpoint is in.

use super::{Region, SAMPLE_RATE};
use crate::transcribe::Segment;

/// How far past a region's padding a crossing segment's boundary may lie and still be moved
/// (Whisper's timestamps come in 0.02 s steps and VAD's in 0.032 s ones; a little more margin).
pub const EDGE_SLACK_S: f64 = 0.3;

/// Where each region of speech lies in the glued audio and how much silence preceded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechMap {
    /// Per region: its end in the glued audio, in samples.
    glued_end: Vec<usize>,
    /// Per region: samples of the original removed before it.
    removed_before: Vec<usize>,
    /// Per region: its start in the original, in samples.
    original_start: Vec<usize>,
    /// Samples of the original audio.
    n_samples: usize,
    /// Seconds of padding VAD put around each region (`speech_pad_ms`).
    pad_s: f64,
}

impl SpeechMap {
    pub fn new(regions: &[Region], n_samples: usize, pad_s: f64) -> Self {
        let (mut glued_end, mut removed_before) = (Vec::new(), Vec::new());
        let (mut previous_end, mut removed) = (0usize, 0usize);
        for r in regions {
            removed += r.start.saturating_sub(previous_end);
            previous_end = r.end;
            glued_end.push(r.end - removed);
            removed_before.push(removed);
        }
        let original_start = regions.iter().map(|r| r.start).collect();
        Self { glued_end, removed_before, original_start, n_samples, pad_s }
    }

    /// The samples of `regions`, one after the other.
    pub fn glue(samples: &[f32], regions: &[Region]) -> Vec<f32> {
        let mut out = Vec::with_capacity(regions.iter().map(|r| r.end - r.start).sum());
        for r in regions {
            out.extend_from_slice(&samples[r.start.min(samples.len())..r.end.min(samples.len())]);
        }
        out
    }

    /// Where each region ends in the glued audio, in whole mel frames (10 ms).
    pub fn glued_end_frames(&self) -> Vec<usize> {
        self.glued_end.iter().map(|e| e / crate::mel::HOP_LENGTH).collect()
    }

    /// Seconds of speech kept.
    pub fn kept_seconds(&self) -> f32 {
        self.glued_end.last().copied().unwrap_or(0) as f32 / SAMPLE_RATE as f32
    }

    /// Seconds of the original audio, counted as `LogMel::seconds` counts them (whole 10 ms
    /// frames), so a transcript's `duration` is the same with VAD and without.
    pub fn original_seconds(&self) -> f32 {
        seconds(self.n_samples)
    }

    /// The region a glued time `t` (seconds) falls in.
    fn region_of(&self, t: f64, is_end: bool) -> usize {
        // Rounded, not truncated: the times are f32 multiples of 0.01 s (10.4 s is 166399.99…
        // samples in f32), where faster-whisper's f64 lands on the sample itself.
        let sample = (t * SAMPLE_RATE as f64).round().max(0.0) as usize;
        if is_end {
            if let Some(i) = self.glued_end.iter().position(|&e| e == sample) {
                return i;
            }
        }
        // The first region ending after `sample` (Python's bisect_right), or the last.
        let i = self.glued_end.partition_point(|&e| e <= sample);
        i.min(self.glued_end.len().saturating_sub(1))
    }

    /// The original time of glued time `t` in region `region`.
    fn original(&self, t: f64, region: usize) -> f64 {
        self.removed_before.get(region).copied().unwrap_or(0) as f64 / SAMPLE_RATE as f64 + t
    }

    /// Region `i`'s span in the original, in seconds.
    fn original_span(&self, i: usize) -> (f64, f64) {
        let rate = SAMPLE_RATE as f64;
        let start = self.original_start[i] as f64 / rate;
        let glued_start = if i == 0 { 0 } else { self.glued_end[i - 1] };
        (start, start + (self.glued_end[i] - glued_start) as f64 / rate)
    }

    /// Moves a segment (and its words) from glued time to original time.
    pub fn restore(&self, segment: &mut Segment) {
        if self.glued_end.is_empty() {
            return;
        }
        let rate = SAMPLE_RATE as f64;
        if segment.words.is_empty() {
            let (start, end) = (segment.start as f64, segment.end as f64);
            let (mut first, last) = (self.region_of(start, false), self.region_of(end, true));
            let edge = self.pad_s + EDGE_SLACK_S;
            let mut new_start = self.original(start, first);
            if first < last && self.glued_end[first] as f64 / rate - start <= edge {
                first += 1;
                new_start = self.original_span(first).0;
            }
            let mut new_end = self.original(end, last);
            if first < last && end - self.glued_end[last - 1] as f64 / rate <= edge {
                new_end = self.original_span(last - 1).1;
            }
            segment.start = round(new_start);
            segment.end = round(new_end.max(new_start));
            return;
        }
        for w in &mut segment.words {
            let region = self.region_of((w.start as f64 + w.end as f64) / 2.0, false);
            let (lo, hi) = self.original_span(region);
            w.start = round(self.original(w.start as f64, region).clamp(lo, hi));
            w.end = round(self.original(w.end as f64, region).clamp(lo, hi));
        }
        segment.start = segment.words[0].start;
        segment.end = segment.words[segment.words.len() - 1].end;
    }
}

/// Seconds rounded to 0.01 (faster-whisper's `time_precision`).
fn round(t: f64) -> f32 {
    ((t * 100.0).round() / 100.0) as f32
}

/// `n_samples` at 16 kHz in whole mel frames (10 ms), as `LogMel::seconds`.
pub fn seconds(n_samples: usize) -> f32 {
    use crate::mel::{FRAMES_PER_SECOND, HOP_LENGTH};
    (n_samples / HOP_LENGTH) as f32 / FRAMES_PER_SECOND as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::Word;

    const S: usize = SAMPLE_RATE;

    fn segment(start: f32, end: f32, words: &[(f32, f32)]) -> Segment {
        Segment {
            id: 0,
            seek: 0,
            start,
            end,
            text: String::new(),
            tokens: Vec::new(),
            temperature: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: words.iter().map(|&(s, e)| Word { word: "w".into(), start: s, end: e, probability: 1.0 }).collect(),
        }
    }

    /// 10 s speech + 40 s silence + 10 s speech, kept as 0–10.4 s and 49.6–60 s (0.4 s pads).
    fn map() -> SpeechMap {
        let regions = [Region { start: 0, end: 10 * S + 6400 }, Region { start: 50 * S - 6400, end: 60 * S }];
        SpeechMap::new(&regions, 60 * S, 0.4)
    }

    #[test]
    fn glued_times_map_back_past_the_removed_silence() {
        let m = map();
        assert_eq!(m.kept_seconds(), 20.8);
        // Removed before the second region: 49.6 − 10.4 = 39.2 s.
        let mut s = segment(12.0, 15.5, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (51.2, 54.7));
        // A segment spanning the cut: its start stays, its end moves.
        let mut s = segment(8.0, 12.0, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (8.0, 51.2));
        // An end exactly at the first region's glued end (10.4 s) stays in the first region.
        let mut s = segment(5.0, 10.4, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (5.0, 10.4));
    }

    #[test]
    fn a_segment_that_only_touches_a_region_through_its_padding_moves_out_of_it() {
        let m = map();
        // Starts 0.4 s before the cut (the first region's padding), words after it: it starts
        // where the second region does, not in the silence at 10.0 s.
        let mut s = segment(10.0, 15.0, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (49.6, 54.2));
        // Ends 0.2 s into the second region: it ends with the first.
        let mut s = segment(6.0, 10.6, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (6.0, 10.4));
        // 1 s on each side is more than padding: the segment spans the removed silence.
        let mut s = segment(9.4, 11.4, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (9.4, 50.6));
    }

    #[test]
    fn words_move_by_their_midpoint_and_the_segment_follows_its_words() {
        let m = map();
        // "a" lies in region 0; "b" straddles the cut with its midpoint (10.5) in region 1, so
        // it moves there, kept inside it (49.4 would be in the removed silence).
        let mut s = segment(9.0, 11.0, &[(9.0, 9.8), (10.2, 10.8)]);
        m.restore(&mut s);
        let words: Vec<(f32, f32)> = s.words.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(words, vec![(9.0, 9.8), (49.6, 50.0)]);
        assert_eq!((s.start, s.end), (9.0, 50.0));
    }

    #[test]
    fn glue_concatenates_the_regions() {
        let samples: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let regions = [Region { start: 10, end: 20 }, Region { start: 50, end: 55 }];
        let glued = SpeechMap::glue(&samples, &regions);
        assert_eq!(glued.len(), 15);
        assert_eq!((glued[9], glued[10], glued[14]), (19.0, 50.0, 54.0));
        // Speech at 1–2 s and 5–6 s: glued 0.5 s is 1.5 s, glued 1.5 s is 5.5 s.
        let m = SpeechMap::new(&[Region { start: S, end: 2 * S }, Region { start: 5 * S, end: 6 * S }], 8 * S, 0.0);
        let mut s = segment(0.5, 1.5, &[]);
        m.restore(&mut s);
        assert_eq!((s.start, s.end), (1.5, 5.5));
    }
}
