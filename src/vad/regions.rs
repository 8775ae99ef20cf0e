//! Frame probabilities → speech regions, as faster-whisper 1.2.1 turns Silero's output into
//! speech chunks (`faster_whisper/vad.py`, `get_speech_timestamps`, itself adapted from
//! snakers4/silero-vad `utils_vad.py`). Written from its description:
//!
//! - a region opens at the first frame whose probability reaches `threshold`;
//! - it closes when the probability stays below `neg_threshold` (`threshold − 0.15`, at least
//!   0.01) for `min_silence_duration_ms`; the region ends where that silence began. Frames in
//!   between (below `threshold`, not below `neg_threshold`) keep an open region open;
//! - a region longer than `max_speech_duration_s` is cut at the start of the last silence of
//!   more than 98 ms in it (and continues after it if speech went on), else hard at the limit;
//! - regions of `min_speech_duration_ms` or less are dropped; one still open at the end of
//!   the audio ends there;
//! - finally each region grows by `speech_pad_ms` on both sides, except where two regions are
//!   closer than twice the pad: then the gap is split between them.
//!
//! Positions are in samples at 16 kHz; frame `i` starts at sample `512 i`.

use super::{VadOptions, FRAME_SAMPLES, SAMPLE_RATE};

/// A stretch of speech, in samples of the original audio: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: usize,
    pub end: usize,
}

/// The speech regions of an audio of `n_samples` samples whose 512-sample frames scored `probs`.
pub fn speech_regions(probs: &[f32], n_samples: usize, opts: &VadOptions) -> Vec<Region> {
    let rate = SAMPLE_RATE as f64;
    let frame = FRAME_SAMPLES as f64;
    let pad = rate * opts.speech_pad_ms / 1000.0;
    let min_speech = rate * opts.min_speech_duration_ms / 1000.0;
    let min_silence = rate * opts.min_silence_duration_ms / 1000.0;
    // The longest region before padding, so that a padded one stays within the limit.
    let max_speech = rate * opts.max_speech_duration_s - frame - 2.0 * pad;
    // Silences longer than this inside an over-long region are where it may be cut.
    let cut_silence = rate * 98.0 / 1000.0;
    let threshold = opts.threshold;
    let neg_threshold = opts.neg_threshold.unwrap_or((threshold - 0.15).max(0.01));

    let mut regions: Vec<Region> = Vec::new();
    // The open region's start, if one is open.
    let mut open: Option<usize> = None;
    // Where the current run of silence (below neg_threshold) began; 0 = none (as the reference,
    // which cannot tell a silence starting at sample 0 from none: it never needs to).
    let mut silence_start = 0usize;
    // For over-long regions: the end of the last silence long enough to cut at, and where
    // speech resumed after it.
    let (mut cut_end, mut resume) = (0usize, 0usize);

    for (i, p) in probs.iter().map(|&p| p as f64).enumerate() {
        let pos = FRAME_SAMPLES * i;
        let speech = p >= threshold;
        if speech && silence_start != 0 {
            silence_start = 0;
            if resume < cut_end {
                resume = pos;
            }
        }
        let Some(start) = open else {
            if speech {
                open = Some(pos);
            }
            continue;
        };
        if (pos - start) as f64 > max_speech {
            if cut_end != 0 {
                regions.push(Region { start, end: cut_end });
                // Speech resumed after the cut silence: a new region starts there; else none
                // is open until the next speech frame.
                open = if resume < cut_end { None } else { Some(resume) };
                (cut_end, resume, silence_start) = (0, 0, 0);
            } else {
                regions.push(Region { start, end: pos });
                (open, cut_end, resume, silence_start) = (None, 0, 0, 0);
                continue;
            }
        }
        let Some(start) = open else { continue };
        if p < neg_threshold {
            if silence_start == 0 {
                silence_start = pos;
            }
            if (pos - silence_start) as f64 > cut_silence {
                cut_end = silence_start;
            }
            if ((pos - silence_start) as f64) < min_silence {
                continue;
            }
            if (silence_start - start) as f64 > min_speech {
                regions.push(Region { start, end: silence_start });
            }
            (open, cut_end, resume, silence_start) = (None, 0, 0, 0);
        }
    }
    if let Some(start) = open {
        if (n_samples.saturating_sub(start)) as f64 > min_speech {
            regions.push(Region { start, end: n_samples });
        }
    }
    pad_regions(&mut regions, pad as usize, n_samples);
    regions
}

/// Grows each region by `pad` samples on both sides, splitting gaps shorter than `2 pad`.
fn pad_regions(regions: &mut [Region], pad: usize, n_samples: usize) {
    let n = regions.len();
    for i in 0..n {
        if i == 0 {
            regions[0].start = regions[0].start.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = regions[i + 1].start.saturating_sub(regions[i].end);
            if gap < 2 * pad {
                regions[i].end += gap / 2;
                regions[i + 1].start = regions[i + 1].start.saturating_sub(gap / 2);
            } else {
                regions[i].end = (regions[i].end + pad).min(n_samples);
                regions[i + 1].start = regions[i + 1].start.saturating_sub(pad);
            }
        } else {
            regions[i].end = (regions[i].end + pad).min(n_samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities from a pattern: one char per frame, '#' = 0.9, '-' = 0.4 (between the
    /// thresholds), '.' = 0.05.
    fn probs(pattern: &str) -> Vec<f32> {
        pattern.chars().map(|c| match c { '#' => 0.9, '-' => 0.4, _ => 0.05 }).collect()
    }

    fn opts(min_silence_ms: f64, pad_ms: f64) -> VadOptions {
        VadOptions {
            min_silence_duration_ms: min_silence_ms,
            speech_pad_ms: pad_ms,
            min_speech_duration_ms: 0.0,
            ..VadOptions::default()
        }
    }

    fn frames(regions: &[Region]) -> Vec<(f64, f64)> {
        regions.iter().map(|r| (r.start as f64 / 512.0, r.end as f64 / 512.0)).collect()
    }

    #[test]
    fn a_short_pause_keeps_one_region_a_long_one_splits() {
        // 100 ms of silence = 3.1 frames: 3 silent frames do not end the region at 100 ms.
        let p = probs("..####...####.....");
        let n = p.len() * 512;
        assert_eq!(frames(&speech_regions(&p, n, &opts(100.0, 0.0))), vec![(2.0, 13.0)]);
        // At 64 ms (2 frames) the 3-frame pause splits it; the second region ends where its
        // silence started.
        assert_eq!(frames(&speech_regions(&p, n, &opts(64.0, 0.0))), vec![(2.0, 6.0), (9.0, 13.0)]);
    }

    #[test]
    fn frames_between_the_thresholds_keep_a_region_open_but_do_not_open_one() {
        let p = probs("--##------##..........");
        let n = p.len() * 512;
        assert_eq!(frames(&speech_regions(&p, n, &opts(100.0, 0.0))), vec![(2.0, 12.0)]);
    }

    #[test]
    fn open_at_the_end_runs_to_the_last_sample_and_short_regions_go() {
        let p = probs("......###");
        let n = p.len() * 512 - 100; // the last frame was padded
        assert_eq!(speech_regions(&p, n, &opts(100.0, 0.0)), vec![Region { start: 6 * 512, end: n }]);
        // 2 frames of speech (64 ms) are not more than 64 ms: dropped; 3 frames are kept.
        let p = probs("..##.........###.........");
        let o = VadOptions { min_speech_duration_ms: 64.0, ..opts(100.0, 0.0) };
        assert_eq!(frames(&speech_regions(&p, p.len() * 512, &o)), vec![(13.0, 16.0)]);
    }

    #[test]
    fn padding_grows_regions_and_splits_narrow_gaps() {
        // pad 64 ms = 1024 samples = 2 frames.
        let p = probs("....###..........###.......###......");
        let n = p.len() * 512;
        let r = frames(&speech_regions(&p, n, &opts(100.0, 64.0)));
        // 4..7 → 2..9; 17..20 → 15..22 (the gaps of 10 and 7 frames are ≥ 2 pads); 27..30 → 25..32.
        assert_eq!(r, vec![(2.0, 9.0), (15.0, 22.0), (25.0, 32.0)]);
        // A gap of 3 frames (< 2 pads) is split in half, 1.5 frames each way.
        let p = probs("..###...###.....");
        let r = frames(&speech_regions(&p, p.len() * 512, &opts(64.0, 64.0)));
        assert_eq!(r, vec![(0.0, 6.5), (6.5, 13.0)]);
        // Padding never leaves the audio.
        let p = probs("###");
        assert_eq!(speech_regions(&p, 1000, &opts(100.0, 400.0)), vec![Region { start: 0, end: 1000 }]);
    }

    #[test]
    fn over_long_regions_are_cut_at_a_silence_or_at_the_limit() {
        // max 1 s = 16000 samples; minus one frame: 15488 (30.25 frames). Speech throughout:
        // cut hard after 31 frames, and a new region opens at the next speech frame.
        let long = VadOptions { max_speech_duration_s: 1.0, ..opts(2000.0, 0.0) };
        let p = probs(&"#".repeat(70));
        let r = frames(&speech_regions(&p, p.len() * 512, &long));
        assert_eq!(r, vec![(0.0, 31.0), (32.0, 63.0), (64.0, 70.0)]);
        // A 5-frame silence (> 98 ms) inside is where it is cut, and speech after it starts
        // the next region.
        let pattern = format!("{}.....{}", "#".repeat(20), "#".repeat(30));
        let p = probs(&pattern);
        let r = frames(&speech_regions(&p, p.len() * 512, &long));
        assert_eq!(r, vec![(0.0, 20.0), (25.0, 55.0)]);
    }

    #[test]
    fn no_speech_no_regions() {
        let p = probs(&".".repeat(100));
        assert!(speech_regions(&p, p.len() * 512, &VadOptions::default()).is_empty());
        assert!(speech_regions(&[], 0, &VadOptions::default()).is_empty());
    }

    /// faster-whisper 1.2.1's regions for the same probabilities and options
    /// (tests/reference/vad_reference.py: Silero on jfk + 2 s + jfk, and random walks).
    #[test]
    fn same_regions_as_faster_whisper() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../testdata/vad_reference.json")).unwrap();
        let audios = doc["audios"].as_array().unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 20);
        for case in cases {
            let audio = &audios[case["audio"].as_u64().unwrap() as usize];
            let probs: Vec<f32> = audio["probs"].as_array().unwrap().iter().map(|p| p.to_string().parse().unwrap()).collect();
            let n_samples = audio["n_samples"].as_u64().unwrap() as usize;
            let o = &case["options"];
            let num = |k: &str, d: f64| o.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
            let d = VadOptions::default();
            let opts = VadOptions {
                threshold: num("threshold", d.threshold),
                neg_threshold: o.get("neg_threshold").and_then(|v| v.as_f64()),
                min_speech_duration_ms: num("min_speech_duration_ms", d.min_speech_duration_ms),
                max_speech_duration_s: num("max_speech_duration_s", d.max_speech_duration_s),
                min_silence_duration_ms: num("min_silence_duration_ms", d.min_silence_duration_ms),
                speech_pad_ms: num("speech_pad_ms", d.speech_pad_ms),
            };
            let want: Vec<Region> = case["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| Region { start: r[0].as_u64().unwrap() as usize, end: r[1].as_u64().unwrap() as usize })
                .collect();
            assert_eq!(speech_regions(&probs, n_samples, &opts), want, "{} with {o}", audio["name"]);
        }
    }
}
