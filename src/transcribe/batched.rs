//! Batched long-form, as faster-whisper 1.2.1's `BatchedInferencePipeline` does it: VAD's
//! speech regions are packed into chunks of at most 30 s, and each chunk is one window decoded
//! on its own — no seeking inside it, no previous text — `batch_size` chunks per encoder call
//! and per decoder step (the decoder graph takes several audios, B / Ba rows each).
//!
//! Unlike that pipeline, a chunk whose result fails the repetition or log-probability checks is
//! decoded again alone at the next temperatures (the sequential path's fallback), and the
//! no-speech guard drops a chunk as it drops a window. With word timestamps each chunk is
//! encoded and decoded alone (the alignment pass reads one audio), so only the chunking holds.
//! A backend that cannot take several audios at once (our stock-host provider pins the
//! decoder's audio batch to 1) gets one chunk at a time from its first refusal on.

use std::ops::Range;

use super::segments::{Segments, Window};
use super::{decode_with_fallback, initial_prompt_tokens, is_no_speech, needs_fallback, resolve_language, strategy_at, temperatures};
use super::{Segment, TranscribeOptions, Transcript};
use crate::decode::{self, DecodeOptions, DecodeResult};
use crate::error::Error;
use crate::mel::{LogMel, N_FRAMES};
use crate::model::Model;
use crate::nn::Inference;

/// Transcribes `chunks` of `mel` (mel-frame ranges, each at most 3000 frames, in order).
pub fn transcribe_chunks(
    nn: &mut dyn Inference,
    model: &Model,
    mel: &LogMel,
    chunks: &[Range<usize>],
    opts: &TranscribeOptions,
    batch_size: usize,
    on_segment: &mut dyn FnMut(&Segment),
) -> Result<Transcript, Error> {
    let mut batch = if opts.word_timestamps { 1 } else { batch_size.max(1) };
    let prompt = initial_prompt_tokens(model, opts);
    let first_temperature = temperatures(opts)[0];
    let mut language = None;
    let mut out = Segments::new(mel.seconds());
    let mut next = 0;
    while next < chunks.len() {
        let group = &chunks[next..(next + batch).min(chunks.len())];
        let mut mels = Vec::with_capacity(group.len() * mel.n_mels() * N_FRAMES);
        for c in group {
            mels.extend(mel.window_frames(c.start, c.len()));
        }
        let decoded = (|| {
            nn.encode(&mels)?;
            if language.is_none() {
                language = Some(resolve_language(model, opts, || decode::detect_language_of_first(nn, model, group.len()))?);
            }
            let token = language.as_ref().and_then(|l| l.2);
            let options: Vec<DecodeOptions> = group.iter().map(|c| chunk_options(opts, &prompt, token, c, first_temperature)).collect();
            decode::decode_windows(nn, model, &options)
        })();
        let results = match decoded {
            Ok(results) => results,
            Err(Error::Inference(_)) if group.len() > 1 => {
                batch = 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let token = language.as_ref().and_then(|l| l.2);
        for (c, result) in group.iter().zip(results) {
            let mut result = result;
            if needs_fallback(opts, &result) && temperatures(opts).len() > 1 {
                nn.encode(&mel.window_frames(c.start, c.len()))?;
                let base = chunk_options(opts, &prompt, token, c, first_temperature);
                result = decode_with_fallback(nn, model, opts, base, Some(result))?;
            }
            if is_no_speech(opts, &result) {
                continue;
            }
            close_tail(&mut result, model.special().timestamp_begin, c.len());
            let window = Window { seek: c.start, size: c.len(), language_token: token };
            let before = out.segments.len();
            out.add_window(nn, model, opts, &result, &window, on_segment)?;
            decode_rest(nn, model, mel, c, before, opts, &prompt, token, &mut out, on_segment)?;
        }
        next += group.len();
    }
    let (code, probability, _) = match language {
        Some(l) => l,
        // No chunk: nothing was decoded, so nothing was detected.
        None => resolve_language(model, opts, || Ok(Vec::new()))?,
    };
    Ok(out.into_transcript(code, probability))
}

/// A chunk whose text ends more than this before the chunk does (in mel frames) is decoded
/// again from there: Whisper may end a window early (a lone closing timestamp, then
/// end-of-text), and a chunk is all speech. VAD pads each region by 0.4 s and Whisper's last
/// timestamp lands within a few tenths of the speech's end, so 1.5 s is speech left out.
const REST_FRAMES: usize = 150;

/// Decodes what follows the chunk's last segment, alone, as long as Whisper stops early and
/// each pass gets further: the sequential path's seeking, inside one chunk. `before` is how
/// many segments there were before the chunk's.
#[allow(clippy::too_many_arguments)]
fn decode_rest(
    nn: &mut dyn Inference,
    model: &Model,
    mel: &LogMel,
    chunk: &Range<usize>,
    mut before: usize,
    opts: &TranscribeOptions,
    prompt: &[u32],
    token: Option<u32>,
    out: &mut Segments,
    on_segment: &mut dyn FnMut(&Segment),
) -> Result<(), Error> {
    let first_temperature = temperatures(opts)[0];
    loop {
        let Some(last) = out.segments[before..].last() else { return Ok(()) };
        let from = ((last.end as f64 * crate::mel::FRAMES_PER_SECOND as f64).round() as usize).max(chunk.start);
        if from + REST_FRAMES >= chunk.end {
            return Ok(());
        }
        let rest = from..chunk.end;
        nn.encode(&mel.window_frames(rest.start, rest.len()))?;
        let mut result = decode_with_fallback(nn, model, opts, chunk_options(opts, prompt, token, &rest, first_temperature), None)?;
        if is_no_speech(opts, &result) {
            return Ok(());
        }
        close_tail(&mut result, model.special().timestamp_begin, rest.len());
        before = out.segments.len();
        out.add_window(nn, model, opts, &result, &Window { seek: rest.start, size: rest.len(), language_token: token }, on_segment)?;
        if out.segments[before..].last().is_none_or(|s| s.end as f64 * (crate::mel::FRAMES_PER_SECOND as f64) <= from as f64) {
            return Ok(());
        }
    }
}

fn chunk_options(opts: &TranscribeOptions, prompt: &[u32], language: Option<u32>, chunk: &Range<usize>, t: f32) -> DecodeOptions {
    DecodeOptions {
        task: opts.task,
        language,
        strategy: strategy_at(opts, t),
        without_timestamps: opts.without_timestamps,
        previous_tokens: prompt.to_vec(),
        seed: chunk.start as u64 + 1,
        ..Default::default()
    }
}

/// A chunk is decoded once, so text after its last closing timestamp (a segment the model did
/// not close, which the sequential path would decode again from its start) is kept: it is
/// closed at the chunk's end.
fn close_tail(result: &mut DecodeResult, timestamp_begin: u32, frames: usize) {
    let tokens = &result.tokens;
    let has_pair = tokens.windows(2).any(|w| w[0] >= timestamp_begin && w[1] >= timestamp_begin);
    if has_pair && tokens.last().is_some_and(|t| *t < timestamp_begin) {
        let position = (frames / crate::model::INPUT_STRIDE) as u32;
        let last_ts = tokens.iter().rev().find(|t| **t >= timestamp_begin).copied().unwrap_or(timestamp_begin);
        result.tokens.push((timestamp_begin + position).max(last_ts));
        result.token_logprobs.push(0.0);
    }
}

/// Packs consecutive regions of speech, given by where each ends (in mel frames of the glued
/// audio, in order), into chunks of at most `max_frames`; a region longer than that is cut.
pub fn pack(region_ends: &[usize], max_frames: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut end) = (0usize, 0usize);
    for &e in region_ends {
        if e <= end {
            continue;
        }
        if e - start > max_frames && end > start {
            chunks.push(start..end);
            start = end;
        }
        while e - start > max_frames {
            chunks.push(start..start + max_frames);
            start += max_frames;
        }
        end = e;
    }
    if end > start {
        chunks.push(start..end);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_packed_into_chunks_of_at_most_30_s() {
        // Regions ending at 10, 25, 32, 50, 120 s (in frames): 0–25, 25–50, then the 70 s
        // region in 30 s pieces.
        let ends = [1000, 2500, 3200, 5000, 12000];
        assert_eq!(pack(&ends, 3000), vec![0..2500, 2500..5000, 5000..8000, 8000..11000, 11000..12000]);
        assert_eq!(pack(&[2999, 3000], 3000), vec![0..3000]);
        assert!(pack(&[], 3000).is_empty());
    }

    #[test]
    fn an_unclosed_last_segment_is_closed_at_the_chunk_end() {
        let tb = 100;
        let mut r = DecodeResult {
            tokens: vec![tb, 1, tb + 50, tb + 50, 2, 3],
            token_logprobs: vec![-0.1; 6],
            text: String::new(),
            sum_logprob: -1.0,
            avg_logprob: -0.1,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
        };
        close_tail(&mut r, tb, 2000);
        assert_eq!(r.tokens.last(), Some(&(tb + 1000)));
        assert_eq!(r.token_logprobs.len(), r.tokens.len());
        let split = super::super::split_segments(&r, tb, 0, 2000);
        assert_eq!(split.segments.len(), 2);
        assert!((split.segments[1].1 - 20.0).abs() < 1e-9);
        // Closed already, or a single segment without pairs: unchanged.
        let before = r.tokens.clone();
        close_tail(&mut r, tb, 2000);
        assert_eq!(r.tokens, before);
        let mut single = DecodeResult { tokens: vec![tb, 1, 2], ..r.clone() };
        close_tail(&mut single, tb, 2000);
        assert_eq!(single.tokens, vec![tb, 1, 2]);
    }
}
