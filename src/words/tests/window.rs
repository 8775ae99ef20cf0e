//! A window end to end with a scripted network.

use super::alignment::naive_median;
use super::*;

// ---- end to end with a scripted network

/// Keeps the sequence it has been fed (like the real cache) and returns, for each new
/// position p, attention concentrated around frame `peak(p)`, plus logits that favour the
/// next token of `script`.
struct Aligner {
    seq: Vec<u32>,
    calls: usize,
    script: Vec<u32>,
    sot_len: usize,
}

const N_CTX: usize = 1500;
const STRIDE: usize = 20; // frames per text row

impl Aligner {
    fn new(script: Vec<u32>) -> Self {
        Self { seq: Vec::new(), calls: 0, script, sot_len: SOT_SEQ.len() }
    }
    fn row(&self, p: usize, head: usize) -> Vec<f32> {
        let mut w = vec![1e-4f32; N_CTX];
        if p >= self.sot_len {
            let peak = ((p - self.sot_len) * STRIDE + STRIDE / 2) as f32 + head as f32;
            for (f, v) in w.iter_mut().enumerate() {
                *v += (-((f as f32 - peak) / 4.0).powi(2)).exp();
            }
        }
        let s: f32 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
        w
    }
}

impl Inference for Aligner {
    fn encode(&mut self, _mel: &[f32]) -> Result<(), Error> {
        Ok(())
    }
    fn decode(
        &mut self,
        tokens: &[u32],
        batch: usize,
        cache_index: &[u32],
        restart: bool,
        want_alignment: bool,
    ) -> Result<StepOutput, Error> {
        assert_eq!((batch, cache_index), (1, &[0u32][..]));
        assert!(want_alignment);
        self.calls += 1;
        if restart {
            self.seq.clear();
        }
        let p0 = self.seq.len();
        self.seq.extend_from_slice(tokens);
        let t = tokens.len();
        let mut al = Vec::with_capacity(2 * t * N_CTX);
        for h in 0..2 {
            for k in 0..t {
                al.extend(self.row(p0 + k, h));
            }
        }
        // logits: the next scripted token (after the prompt) gets 3.0, eot 1.0, others 0.
        let mut logits = vec![0.0f32; N_VOCAB];
        let n_text_seen = self.seq.len() - (self.sot_len + 1);
        if let Some(next) = self.script.get(n_text_seen) {
            logits[*next as usize] = 3.0;
        }
        logits[EOT as usize] = 1.0;
        Ok(StepOutput { logits, alignment: Some(al) })
    }
}

fn expected_prob() -> f64 {
    // softmax over the 18 text tokens: one at 3.0, 17 at 0.0 (eot is outside the text vocab)
    let e3 = 3.0f64.exp();
    e3 / (e3 + 17.0)
}

#[test]
fn aligns_a_window_end_to_end() {
    let model = word_model();
    let text = vec![0, 1, 2, 3, 4, 5, 6]; // " And so, my fellow."
    let mut nn = Aligner::new(text.clone());
    let lp = vec![-0.1f32; text.len()];
    let words = align_words(&mut nn, &model, &SOT_SEQ, &text, 600, 5.0, TokenProbs::Logprobs(&lp)).unwrap();
    assert_eq!(nn.calls, 1);
    assert_eq!(nn.seq, [&SOT_SEQ[..], &[28], &text[..], &[EOT]].concat());
    let names: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(names, vec![" And", " so,", " my", " fellow."]);
    for w in &words {
        assert!(w.start >= 5.0 && w.end <= 5.0 + 12.0 && w.start < w.end, "{w:?}");
        assert!((w.probability - (-0.1f32).exp()).abs() < 1e-6);
    }
    for pair in words.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:?}");
    }
    // Row r (r = 0 for <|notimestamps|>, r = k + 1 for text token k) peaks at frame
    // 20 r + 10, so the path enters row r near frame 20 r: the word of text tokens
    // a..b runs from about 0.4 a s to 0.4 b s.
    let expect = [(0.0, 0.4), (0.4, 0.8), (1.2, 1.6), (1.6, 2.4)];
    for (w, (s, e)) in words.iter().zip(expect) {
        assert!((w.start - 5.0 - s).abs() <= 0.1 && (w.end - 5.0 - e).abs() <= 0.1, "{w:?} vs {s}..{e}");
    }
}

#[test]
fn teacher_forcing_gives_whisper_probabilities_and_the_same_times() {
    let model = word_model();
    let text = vec![0, 1, 2, 3, 4, 5, 6];
    let mut one = Aligner::new(text.clone());
    let lp = vec![-0.1f32; text.len()];
    let a = find_alignment(&mut one, &model, &SOT_SEQ, &text, 600, TokenProbs::Logprobs(&lp)).unwrap();
    let mut steps = Aligner::new(text.clone());
    let b = find_alignment(&mut steps, &model, &SOT_SEQ, &text, 600, TokenProbs::TeacherForced).unwrap();
    assert_eq!(steps.calls, text.len() + 2);
    assert_eq!(steps.seq, one.seq);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.word, &x.tokens, x.start, x.end), (&y.word, &y.tokens, y.start, y.end));
        assert!((y.probability - expected_prob()).abs() < 1e-9, "{y:?}");
    }
}

#[test]
fn add_word_timestamps_over_two_segments() {
    let model = word_model();
    let t1 = [29, 0, 1, 2, 33];
    let t2 = [33, 3, 4, 5, 6, 38];
    let text: Vec<u32> = t1.iter().chain(&t2).copied().filter(|t| *t < EOT).collect();
    let mut nn = Aligner::new(text.clone());
    let seek = 1000;
    let mut segs = vec![
        SegmentSpan { start: faster_whisper_time(seek, 0), end: faster_whisper_time(seek, 4), tokens: &t1 },
        SegmentSpan { start: faster_whisper_time(seek, 4), end: faster_whisper_time(seek, 9), tokens: &t2 },
    ];
    let lp = vec![-0.2f32; text.len()];
    let words =
        add_word_timestamps(&mut nn, &model, &SOT_SEQ, &mut segs, seek, 600, TokenProbs::Logprobs(&lp), 9.5).unwrap();
    let names = |ws: &[Word]| ws.iter().map(|w| w.word.clone()).collect::<Vec<_>>();
    assert_eq!(names(&words[0]), vec![" And", " so,"]);
    assert_eq!(names(&words[1]), vec![" my", " fellow."]);
    // segment bounds follow the words
    assert_eq!(segs[0].start, words[0][0].start as f64);
    assert_eq!(segs[0].end, round2(words[0][1].end as f64));
    assert_eq!(segs[1].end, round2(words[1][1].end as f64));
    assert!(words[0][0].start >= 10.0 && words[1][1].end <= 16.0);
    assert_eq!(get_end(&segs, &words), Some(round2(words[1][1].end as f64)));
    // nothing to align: no call
    let mut idle = Aligner::new(vec![]);
    let none = find_alignment(&mut idle, &model, &SOT_SEQ, &[], 600, TokenProbs::TeacherForced).unwrap();
    assert!(none.is_empty() && idle.calls == 0);
}

#[test]
fn the_language_token_picks_the_split() {
    let model = word_model();
    let text = vec![13, 14, 15, 6]; // 京人.
    let ja = [19, 21, 24];
    let mut nn = Aligner::new(text.clone());
    let lp = vec![0.0f32; text.len()];
    let words = align_words(&mut nn, &model, &ja, &text, 600, 0.0, TokenProbs::Logprobs(&lp)).unwrap();
    let names: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(names, vec!["京", "人."]);
    assert!(words[0].end <= words[1].start);
}

#[test]
fn alignment_matrix_standardizes_over_tokens_and_drops_prompt_and_eot_rows() {
    // 1 head, 4 tokens, 5 positions of which 4 are audio frames.
    let w: Vec<f32> = vec![
        1.0, 1.0, 1.0, 1.0, 6.0, //
        4.0, 0.0, 0.0, 0.0, 9.0, //
        0.0, 4.0, 0.0, 0.0, 0.0, //
        0.0, 0.0, 2.0, 2.0, 0.0,
    ];
    let m = alignment_matrix(&w, 1, 4, 5, 4, 1);
    assert_eq!(m.len(), 2 * 4); // rows 1 and 2
    // After renormalizing: rows [.25 .25 .25 .25], [1 0 0 0], [0 1 0 0], [0 0 .5 .5].
    // Frame 0 column: (.25, 1, 0, 0): mean .3125, population std 0.4135...
    let col = [0.25f64, 1.0, 0.0, 0.0];
    let mean = col.iter().sum::<f64>() / 4.0;
    let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    let z1 = ((1.0 - mean) / std) as f32;
    // The median filter (width 7) runs on rows of 4 (> 3): compare with the naive filter.
    let mut std_rows = [0.0f32; 16];
    let rows = [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]];
    for f in 0..4 {
        let c: Vec<f64> = rows.iter().map(|r| r[f]).collect();
        let mean = c.iter().sum::<f64>() / 4.0;
        let std = (c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        for t in 0..4 {
            std_rows[t * 4 + f] = ((c[t] - mean) / std) as f32;
        }
    }
    assert!((std_rows[4] - z1).abs() < 1e-6);
    let want: Vec<f32> = std_rows.chunks(4).skip(1).take(2).flat_map(|r| naive_median(r, 7)).collect();
    for (g, w) in m.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{m:?} vs {want:?}");
    }
}
