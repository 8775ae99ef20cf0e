//! Speakers onto the transcript: each word takes the speaker of the window whose centre is
//! nearest its middle; a segment whose words change speaker is split at that word boundary
//! (each piece keeps its words, its text is theirs, and its times are its first word's start and
//! last word's end, the outer ones the segment's own); a segment without words takes the speaker
//! at its middle. A lone word between two words of another speaker takes theirs (one window's
//! flicker is not a turn). Segment ids are renumbered; a split piece has no `tokens` (the token
//! list cannot be cut at a word exactly).

use crate::transcribe::{Segment, Transcript};

/// A clustered window: its centre in seconds of the original audio and its speaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub center_s: f32,
    pub speaker: usize,
}

/// The transcript split at speaker changes, with each segment's and each word's speaker.
#[derive(Debug, Clone)]
pub struct Assigned {
    pub transcript: Transcript,
    pub segments: Vec<usize>,
    pub words: Vec<Vec<usize>>,
}

/// The speaker at `t` seconds (`windows` sorted by centre, not empty).
pub fn speaker_at(windows: &[Labelled], t: f32) -> usize {
    let i = windows.partition_point(|w| w.center_s < t);
    let before = i.checked_sub(1).map(|j| windows[j]);
    let after = windows.get(i).copied();
    match (before, after) {
        (Some(b), Some(a)) => if t - b.center_s <= a.center_s - t { b.speaker } else { a.speaker },
        (Some(w), None) | (None, Some(w)) => w.speaker,
        (None, None) => 0,
    }
}

pub fn assign(t: Transcript, windows: &[Labelled]) -> Assigned {
    let mut out = Assigned { transcript: Transcript { segments: Vec::new(), ..t.clone() }, segments: Vec::new(), words: Vec::new() };
    if windows.is_empty() {
        out.segments = vec![0; t.segments.len()];
        out.words = t.segments.iter().map(|s| vec![0; s.words.len()]).collect();
        out.transcript = t;
        return out;
    }
    for seg in t.segments {
        if seg.words.is_empty() {
            out.segments.push(speaker_at(windows, (seg.start + seg.end) / 2.0));
            out.words.push(Vec::new());
            out.transcript.segments.push(seg);
            continue;
        }
        let mut who: Vec<usize> = seg.words.iter().map(|w| speaker_at(windows, (w.start + w.end) / 2.0)).collect();
        for i in 1..who.len().saturating_sub(1) {
            if who[i - 1] == who[i + 1] && who[i] != who[i - 1] {
                who[i] = who[i - 1];
            }
        }
        let mut runs: Vec<(usize, usize)> = Vec::new(); // (first word, speaker)
        for (i, &w) in who.iter().enumerate() {
            if runs.last().map_or(true, |&(_, s)| s != w) {
                runs.push((i, w));
            }
        }
        if runs.len() == 1 {
            out.segments.push(runs[0].1);
            out.words.push(who);
            out.transcript.segments.push(seg);
            continue;
        }
        for (r, &(first, speaker)) in runs.iter().enumerate() {
            let last = runs.get(r + 1).map_or(seg.words.len(), |&(f, _)| f);
            let words = seg.words[first..last].to_vec();
            let start = if r == 0 { seg.start } else { words[0].start };
            let end = if r + 1 == runs.len() { seg.end } else { words[words.len() - 1].end };
            out.transcript.segments.push(Segment {
                start,
                end,
                text: words.iter().map(|w| w.word.as_str()).collect(),
                tokens: Vec::new(),
                words,
                ..seg.clone()
            });
            out.segments.push(speaker);
            out.words.push(who[first..last].to_vec());
        }
    }
    for (i, s) in out.transcript.segments.iter_mut().enumerate() {
        s.id = i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::Word;

    fn word(w: &str, start: f32, end: f32) -> Word {
        Word { word: w.into(), start, end, probability: 0.9 }
    }

    fn segment(start: f32, end: f32, words: Vec<Word>) -> Segment {
        Segment {
            id: 9,
            seek: 0,
            start,
            end,
            text: words.iter().map(|w| w.word.as_str()).collect(),
            tokens: vec![1, 2, 3],
            temperature: 0.0,
            avg_logprob: -0.1,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words,
        }
    }

    fn transcript(segments: Vec<Segment>) -> Transcript {
        Transcript { language: "en".into(), language_probability: 1.0, duration: 10.0, text: String::new(), segments }
    }

    /// Speaker 0 until 4 s, then 1 (windows every 0.8 s).
    fn windows() -> Vec<Labelled> {
        (0..12).map(|i| Labelled { center_s: 0.8 * i as f32 + 0.8, speaker: (0.8 * i as f32 + 0.8 > 4.0) as usize }).collect()
    }

    #[test]
    fn a_segment_across_a_turn_change_is_split_at_the_word() {
        let seg = segment(0.5, 6.0, vec![word(" Hello", 0.5, 1.0), word(" there.", 1.2, 3.5), word(" Hi", 4.5, 5.0), word(" you.", 5.1, 5.9)]);
        let a = assign(transcript(vec![seg, segment(6.5, 8.0, vec![word(" Yes.", 6.6, 7.9)])]), &windows());
        let s = &a.transcript.segments;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].text.as_str(), s[0].start, s[0].end), (" Hello there.", 0.5, 3.5));
        assert_eq!((s[1].text.as_str(), s[1].start, s[1].end), (" Hi you.", 4.5, 6.0));
        assert_eq!(a.segments, vec![0, 1, 1]);
        assert_eq!(a.words, vec![vec![0, 0], vec![1, 1], vec![1]]);
        assert_eq!(s.iter().map(|s| s.id).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(s[0].tokens.is_empty() && s[2].tokens == vec![1, 2, 3], "only unsplit segments keep their tokens");
    }

    #[test]
    fn a_lone_flicker_is_not_a_turn_and_wordless_segments_use_their_middle() {
        let mut w = windows();
        w[2].speaker = 1; // 2.4 s
        let seg = segment(1.0, 3.5, vec![word(" a", 1.0, 1.5), word(" b", 2.2, 2.6), word(" c", 3.0, 3.4)]);
        let a = assign(transcript(vec![seg, segment(7.0, 9.0, Vec::new())]), &w);
        assert_eq!(a.transcript.segments.len(), 2);
        assert_eq!(a.segments, vec![0, 1]);
        assert_eq!(a.words[0], vec![0, 0, 0]);
    }

    #[test]
    fn nearest_window_decides() {
        let w = windows();
        assert_eq!(speaker_at(&w, 0.0), 0);
        assert_eq!(speaker_at(&w, 3.9), 0);
        assert_eq!(speaker_at(&w, 4.5), 1);
        assert_eq!(speaker_at(&w, 100.0), 1);
    }
}
