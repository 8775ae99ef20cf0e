//! Who spoke when: speaker diarization inside the sandbox.
//!
//! speech regions (Silero VAD, `vad/silero`, when the host has it) → 1.6 s windows every 0.8 s
//! (`embed`) → 40-band mel power spectrogram (`mel40`) → Resemblyzer's GE2E speaker encoder
//! (`speaker/resemblyzer` through wasi-nn, models/speaker.py) → spectral clustering, the speaker
//! count automatic or bounded (`cluster`) → known speakers named by their references → each word
//! and segment gets a speaker, segments split where the speaker changes (`assign`).
//!
//! Labels are `A`, `B`, … in order of first appearance, or the names of known speakers whose
//! reference voice is the closest to a cluster's (cosine ≥ [`KNOWN_MIN_SIMILARITY`]).

pub mod assign;
pub mod cluster;
pub mod embed;
pub mod mel40;
pub mod params;

pub use cluster::SpeakerCount;
pub use params::{DiarizeOptions, KnownSpeaker};

use crate::error::Error;
use crate::mel::SAMPLE_RATE;
use crate::nn::SpeakerNet;
use crate::transcribe::Transcript;
use crate::vad::{self, Region, VadOptions};

/// The wasi-nn graph: model directory `speaker`, graph `resemblyzer`.
pub const GRAPH: &str = "speaker/resemblyzer";
/// A cluster takes a known speaker's name only if its centroid is at least this close (cosine)
/// to the reference's embedding (centroids of two different speakers measured 0.47–0.84,
/// of one speaker 0.97–0.998 — a reference from another recording lies in between).
pub const KNOWN_MIN_SIMILARITY: f32 = 0.75;

/// Speech regions for embedding: shorter silences split turns than for transcription.
fn diarization_vad() -> VadOptions {
    VadOptions { min_silence_duration_ms: 300.0, speech_pad_ms: 100.0, ..VadOptions::default() }
}

/// Each segment's and each word's speaker label, beside the (split) transcript, and who spoke
/// when regardless of the text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speakers {
    pub segments: Vec<String>,
    pub words: Vec<Vec<String>>,
    pub turns: Vec<Turn>,
}

/// A speaker's stretch of speech, in seconds of the original audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub speaker: String,
    pub start: f32,
    pub end: f32,
}

/// Turns from the labelled windows: within each speech region, the speaker changes halfway
/// between the centres of two windows of different speakers; a region's first and last turns
/// reach its edges. Regions without a window take the nearest window's speaker.
pub fn turns(regions: &[Region], windows: &[assign::Labelled]) -> Vec<(usize, f32, f32)> {
    let mut out: Vec<(usize, f32, f32)> = Vec::new();
    if windows.is_empty() {
        return out;
    }
    for r in regions {
        let (start, end) = (seconds(r.start), seconds(r.end));
        let inside: Vec<&assign::Labelled> = windows.iter().filter(|w| w.center_s >= start && w.center_s <= end).collect();
        if inside.is_empty() {
            out.push((assign::speaker_at(windows, (start + end) / 2.0), start, end));
            continue;
        }
        let mut t0 = start;
        for (i, w) in inside.iter().enumerate() {
            match inside.get(i + 1) {
                Some(next) if next.speaker != w.speaker => {
                    let cut = (w.center_s + next.center_s) / 2.0;
                    out.push((w.speaker, t0, cut));
                    t0 = cut;
                }
                Some(_) => {}
                None => out.push((w.speaker, t0, end)),
            }
        }
    }
    out
}

/// `A`, `B`, … `Z`, `AA`, `AB`, …
pub fn letter(i: usize) -> String {
    let mut s = String::new();
    let mut n = i + 1;
    while n > 0 {
        s.insert(0, (b'A' + ((n - 1) % 26) as u8) as char);
        n = (n - 1) / 26;
    }
    s
}

/// Diarizes `samples` (16 kHz, the original audio the transcript's times refer to), in the
/// speech regions of their VAD scores `probs` ([`vad::speech_probs`]; `None`: all speech).
pub fn diarize(
    net: &mut dyn SpeakerNet,
    probs: Option<&[f32]>,
    samples: &[f32],
    transcript: Transcript,
    opts: &DiarizeOptions,
) -> Result<(Transcript, Speakers), Error> {
    let regions = match probs {
        Some(probs) => vad::speech_regions(probs, samples.len(), &diarization_vad()),
        None => vec![Region { start: 0, end: samples.len() }],
    };
    let windows = embed::embed_regions(net, samples, &regions)?;
    let embeddings: Vec<&[f32]> = windows.iter().map(|w| w.embedding.as_slice()).collect();
    let labels = cluster::cluster(&embeddings, opts.count);
    let labelled: Vec<assign::Labelled> =
        windows.iter().zip(&labels).map(|(w, &speaker)| assign::Labelled { center_s: w.center_s(), speaker }).collect();
    let names = known_names(net, opts, &windows, &labels)?;
    let raw_turns = turns(&regions, &labelled);
    let a = assign::assign(transcript, &labelled);
    // Letters in order of first appearance in the transcript; known names where they matched.
    let mut order: Vec<usize> = Vec::new();
    for &s in a.segments.iter().chain(raw_turns.iter().map(|(s, _, _)| s)) {
        if !order.contains(&s) && names.get(s).is_none_or(Option::is_none) {
            order.push(s);
        }
    }
    let label = |s: usize| match names.get(s).cloned().flatten() {
        Some(name) => name,
        None => letter(order.iter().position(|&o| o == s).unwrap_or(order.len())),
    };
    let speakers = Speakers {
        segments: a.segments.iter().map(|&s| label(s)).collect(),
        words: a.words.iter().map(|w| w.iter().map(|&s| label(s)).collect()).collect(),
        turns: raw_turns.iter().map(|&(s, start, end)| Turn { speaker: label(s), start, end }).collect(),
    };
    Ok((a.transcript, speakers))
}

/// For each cluster, the known speaker it is (greedy on the highest similarity, one cluster per name).
fn known_names(
    net: &mut dyn SpeakerNet,
    opts: &DiarizeOptions,
    windows: &[embed::Window],
    labels: &[usize],
) -> Result<Vec<Option<String>>, Error> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut names = vec![None; k];
    if opts.known.is_empty() || k == 0 {
        return Ok(names);
    }
    let centroids: Vec<Vec<f32>> = (0..k)
        .map(|c| {
            embed::mean_embedding(windows.iter().zip(labels).filter(|(_, &l)| l == c).map(|(w, _)| w.embedding.as_slice()))
                .unwrap_or_default()
        })
        .collect();
    let mut refs = Vec::new();
    for known in &opts.known {
        let whole = [Region { start: 0, end: known.samples.len() }];
        let w = embed::embed_regions(net, &known.samples, &whole)?;
        refs.push(embed::mean_embedding(w.iter().map(|w| w.embedding.as_slice())).unwrap_or_default());
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (c, centroid) in centroids.iter().enumerate() {
        for (r, reference) in refs.iter().enumerate() {
            pairs.push((centroid.iter().zip(reference).map(|(a, b)| a * b).sum(), c, r));
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut used = vec![false; refs.len()];
    for (sim, c, r) in pairs {
        if sim >= KNOWN_MIN_SIMILARITY && names[c].is_none() && !used[r] {
            names[c] = Some(opts.known[r].name.clone());
            used[r] = true;
        }
    }
    Ok(names)
}

/// Seconds of `n` samples at 16 kHz.
pub fn seconds(n: usize) -> f32 {
    n as f32 / SAMPLE_RATE as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_change_halfway_between_windows_and_fill_regions() {
        let s = SAMPLE_RATE;
        let regions = [Region { start: 0, end: 10 * s }, Region { start: 12 * s, end: 13 * s }];
        let w = |c: f32, speaker| assign::Labelled { center_s: c, speaker };
        let windows = [w(1.0, 0), w(2.0, 0), w(3.0, 1), w(9.0, 1)];
        assert_eq!(turns(&regions, &windows), vec![(0, 0.0, 2.5), (1, 2.5, 10.0), (1, 12.0, 13.0)]);
    }

    #[test]
    fn letters() {
        assert_eq!((0..3).map(letter).collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "AA");
    }
}
