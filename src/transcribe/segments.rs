//! A decoded window's tokens become segments: cut at consecutive timestamp pairs, words
//! aligned when asked for, empty ones dropped, each handed to `on_segment` as it is made. Both
//! long-form paths (sequential seeking in `mod.rs`, chunks in `batched.rs`) build their
//! transcripts here.

use super::{Segment, TranscribeOptions, Transcript};
use crate::decode::{DecodeResult, Task};
use crate::error::Error;
use crate::mel::FRAMES_PER_SECOND;
use crate::model::{Model, INPUT_STRIDE};
use crate::nn::Inference;
use crate::words::{self, SegmentSpan, TokenProbs, Word};

/// Where a decoded window lies: its first mel frame, its length in frames (≤ 3000), and the
/// language token it was decoded with.
pub struct Window {
    pub seek: usize,
    pub size: usize,
    pub language_token: Option<u32>,
}

/// The transcript so far.
pub struct Segments {
    pub segments: Vec<Segment>,
    /// The text tokens of every kept segment (with their timestamps), after the initial
    /// prompt's: the context of the next window.
    pub all_tokens: Vec<u32>,
    last_speech_timestamp: f64,
    duration: f32,
}

impl Segments {
    pub fn new(duration: f32) -> Self {
        Self { segments: Vec::new(), all_tokens: Vec::new(), last_speech_timestamp: 0.0, duration }
    }

    /// Adds the segments of `result`, decoded from `window` (the window the network last
    /// encoded, when words are aligned); returns the mel frame where the next window starts.
    pub fn add_window(
        &mut self,
        nn: &mut dyn Inference,
        model: &Model,
        opts: &TranscribeOptions,
        result: &DecodeResult,
        window: &Window,
        on_segment: &mut dyn FnMut(&Segment),
    ) -> Result<usize, Error> {
        let sp = *model.special();
        let time_offset = window.seek as f32 / FRAMES_PER_SECOND as f32;
        let split = split_segments(result, sp.timestamp_begin, window.seek, window.size);
        let mut seek = split.next_seek;
        let mut spans: Vec<SegmentSpan> = split
            .segments
            .iter()
            .map(|(start, end, range)| SegmentSpan { start: *start, end: *end, tokens: &result.tokens[range.clone()] })
            .collect();
        let mut words: Vec<Vec<Word>> = vec![Vec::new(); spans.len()];
        if opts.word_timestamps && !spans.is_empty() {
            let mut sot_sequence = vec![sp.sot];
            if model.config.multilingual {
                sot_sequence.extend(window.language_token);
                sot_sequence.push(if opts.task == Task::Translate { sp.translate } else { sp.transcribe });
            }
            let text_logprobs: Vec<f32> = split
                .segments
                .iter()
                .flat_map(|(_, _, range)| range.clone())
                .filter(|&i| result.tokens[i] < sp.eot)
                .map(|i| result.token_logprobs[i])
                .collect();
            words = words::add_word_timestamps(
                nn,
                model,
                &sot_sequence,
                &mut spans,
                window.seek,
                window.size,
                TokenProbs::Logprobs(&text_logprobs),
                self.last_speech_timestamp,
            )?;
            if let Some(end) = words::get_end(&spans, &words) {
                // As faster-whisper: continue after the last word rather than the last timestamp.
                if !split.single_timestamp_ending && end > time_offset as f64 {
                    seek = (end * FRAMES_PER_SECOND as f64).round() as usize;
                }
                self.last_speech_timestamp = end;
            }
        }
        for (span, words) in spans.iter().zip(words) {
            let text = model.tokenizer.decode(span.tokens);
            // Zero-length or empty segments are dropped, and not used as context either.
            if span.start == span.end || text.trim().is_empty() {
                continue;
            }
            // The context for the next window keeps the timestamp tokens (as Whisper does).
            self.all_tokens.extend_from_slice(span.tokens);
            let start = (span.start as f32).min(self.duration);
            let end = (span.end as f32).min(self.duration).max(start);
            let segment = Segment {
                id: self.segments.len(),
                seek: window.seek,
                start,
                end,
                text,
                tokens: span.tokens.to_vec(),
                temperature: result.temperature,
                avg_logprob: result.avg_logprob,
                compression_ratio: result.compression_ratio,
                no_speech_prob: result.no_speech_prob,
                words,
            };
            on_segment(&segment);
            self.segments.push(segment);
        }
        Ok(seek)
    }

    pub fn into_transcript(self, language: String, language_probability: f32) -> Transcript {
        let text = self.segments.iter().map(|s| s.text.as_str()).collect::<String>();
        Transcript { language, language_probability, duration: self.duration, text, segments: self.segments }
    }
}

/// A window's tokens cut into segments.
pub struct Split {
    /// `(start_s, end_s, token range)` per segment; times as faster-whisper computes them
    /// (`seek * 0.01 + position * 0.02`, in f64, so comparisons tie the same way).
    pub segments: Vec<(f64, f64, std::ops::Range<usize>)>,
    /// Mel frame the next window starts at.
    pub next_seek: usize,
    /// The window ended with a lone timestamp: everything in it was consumed.
    pub single_timestamp_ending: bool,
}

/// Cuts a window's tokens into segments at consecutive timestamp pairs and finds where the
/// next window starts.
pub fn split_segments(result: &DecodeResult, timestamp_begin: u32, seek: usize, segment_size: usize) -> Split {
    let tokens = &result.tokens;
    let is_ts = |t: u32| t >= timestamp_begin;
    let time = |t: u32| words::faster_whisper_time(seek, t.saturating_sub(timestamp_begin));
    let single_timestamp_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let mut consecutive: Vec<usize> =
        (1..tokens.len()).filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i])).collect();

    let mut segments = Vec::new();
    if !consecutive.is_empty() {
        if single_timestamp_ending {
            consecutive.push(tokens.len());
        }
        let mut last = 0;
        for &cut in &consecutive {
            if cut > last {
                segments.push((time(tokens[last]), time(tokens[cut - 1]), last..cut));
            }
            last = cut;
        }
        let next_seek = if single_timestamp_ending {
            seek + segment_size
        } else {
            // Continue from the last complete segment's closing timestamp.
            let last_ts = tokens[last - 1].saturating_sub(timestamp_begin) as usize;
            seek + last_ts * INPUT_STRIDE
        };
        Split { segments, next_seek, single_timestamp_ending }
    } else {
        let mut end = seek as f64 * 0.01 + segment_size as f64 * 0.01;
        if let Some(&last_ts) = tokens.iter().rev().find(|t| is_ts(**t)) {
            if last_ts != timestamp_begin {
                end = time(last_ts);
            }
        }
        segments.push((seek as f64 * 0.01, end, 0..tokens.len()));
        Split { segments, next_seek: seek + segment_size, single_timestamp_ending }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(tokens: Vec<u32>) -> DecodeResult {
        DecodeResult {
            token_logprobs: vec![-0.1; tokens.len()],
            tokens,
            text: String::new(),
            sum_logprob: -1.0,
            avg_logprob: -0.1,
            no_speech_prob: 0.01,
            temperature: 0.0,
            compression_ratio: 1.0,
        }
    }

    const TB: u32 = 100; // timestamp_begin in these token lists

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn splits_at_consecutive_timestamps_and_seeks_to_the_last_one() {
        // <0.00> a b <1.00><1.00> c <2.00><2.40> d   (the last segment is unfinished)
        let r = result(vec![TB, 1, 2, TB + 50, TB + 50, 3, TB + 100, TB + 120, 4]);
        let s = split_segments(&r, TB, 3000, 3000);
        let segs = &s.segments;
        assert_eq!(segs.len(), 2);
        assert!(close((segs[0].0, segs[0].1), (30.0, 31.0)));
        assert_eq!(segs[0].2, 0..4);
        assert!(close((segs[1].0, segs[1].1), (31.0, 32.0)));
        // resumes at the closing timestamp of the last complete segment: 2.00 s = 200 frames
        assert_eq!(s.next_seek, 3000 + 200);
        assert!(!s.single_timestamp_ending);
    }

    #[test]
    fn a_single_timestamp_ending_consumes_the_whole_window() {
        let r = result(vec![TB, 1, TB + 50, TB + 50, 2, TB + 150]);
        let s = split_segments(&r, TB, 0, 3000);
        assert_eq!(s.segments.len(), 2);
        assert!(close((s.segments[1].0, s.segments[1].1), (1.0, 3.0)));
        assert_eq!(s.next_seek, 3000);
        assert!(s.single_timestamp_ending);
    }

    #[test]
    fn no_pairs_gives_one_segment_up_to_the_last_timestamp() {
        let r = result(vec![TB, 1, 2, TB + 210]);
        let s = split_segments(&r, TB, 0, 1100);
        assert_eq!(s.segments.len(), 1);
        assert!(close((s.segments[0].0, s.segments[0].1), (0.0, 4.2)));
        assert_eq!(s.next_seek, 1100);
        // without timestamps: the whole window
        let r = result(vec![1, 2]);
        let s = split_segments(&r, TB, 0, 1100);
        assert!(close((s.segments[0].0, s.segments[0].1), (0.0, 11.0)));
    }
}
