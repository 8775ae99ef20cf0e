//! The token loop against a scripted fake network (no wasi-nn). The fake keeps each row's
//! whole token sequence the way the real backend keeps its cache, following `cache_index`,
//! so these tests also check that rows are continued and reordered correctly.

use super::*;
use crate::nn::StepOutput;

// Toy vocabulary: text 0..5 ("a", "b", "c", " d", "e"), eot 5, sot 6, translate 7,
// transcribe 8, sot_lm 9, sot_prev 10, nospeech 11, notimestamps 12, <|en|> 13,
// timestamps 14..=23 (0.00 … 0.18 s).
pub fn toy_model() -> Model {
    let config = r#"{"name":"toy","multilingual":true,
      "dims":{"n_mels":80,"n_audio_ctx":1500,"n_text_ctx":448,"n_text_state":4,"n_text_layer":1,"n_text_head":1,"n_vocab":24},
      "tokens":{"eot":5,"sot":6,"translate":7,"transcribe":8,"sot_lm":9,"sot_prev":10,"no_speech":11,"no_timestamps":12,"timestamp_begin":14},
      "languages":[["en",13]],"suppress_ids":[],"suppress_ids_begin":[5],"alignment_heads":[[0,0]]}"#;
    let mut vocab = vec!["a", "b", "c", "Ġd", "e", "<|endoftext|>", "<|startoftranscript|>", "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>", "<|en|>"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for i in 0..10 {
        vocab.push(format!("<|{:.2}|>", i as f32 * 0.02));
    }
    Model::from_meta(config.as_bytes(), vocab.join("\n").as_bytes(), b"").unwrap()
}

/// Logits for a row, given its whole sequence so far.
type Script = Box<dyn Fn(&[u32]) -> Vec<f32>>;

pub struct Fake {
    pub rows: Vec<Vec<u32>>,
    pub script: Script,
    pub steps: usize,
    pub encoded: usize,
}

impl Fake {
    pub fn new(script: impl Fn(&[u32]) -> Vec<f32> + 'static) -> Self {
        Self { rows: Vec::new(), script: Box::new(script), steps: 0, encoded: 0 }
    }
}

impl Inference for Fake {
    fn encode(&mut self, _mel: &[f32]) -> Result<(), Error> {
        self.encoded += 1;
        Ok(())
    }

    fn decode(
        &mut self,
        tokens: &[u32],
        batch: usize,
        cache_index: &[u32],
        restart: bool,
        _want_alignment: bool,
    ) -> Result<StepOutput, Error> {
        self.steps += 1;
        assert_eq!(cache_index.len(), batch);
        let t = tokens.len() / batch;
        let prev = if restart { vec![Vec::new()] } else { std::mem::take(&mut self.rows) };
        self.rows = (0..batch)
            .map(|i| {
                let mut r = prev[cache_index[i] as usize].clone();
                r.extend_from_slice(&tokens[i * t..(i + 1) * t]);
                r
            })
            .collect();
        let logits = self.rows.iter().flat_map(|r| (self.script)(r)).collect();
        Ok(StepOutput { logits, alignment: None })
    }
}

/// A network that "says" `text` (after the prompt), then end-of-text.
pub fn saying(text: Vec<u32>) -> impl Fn(&[u32]) -> Vec<f32> {
    move |seq: &[u32]| {
        let mut l = vec![0.0f32; 24];
        let start = seq.iter().position(|t| *t == 6).unwrap();
        // position after sot and the task tokens (lang, task, [notimestamps])
        let after: Vec<u32> = seq[start + 1..].iter().copied().filter(|t| !(7..=13).contains(t)).collect();
        let next = text.get(after.len()).copied().unwrap_or(5);
        l[next as usize] = 10.0;
        l[11] = 1.0; // a little no-speech mass
        l
    }
}

fn opts() -> DecodeOptions {
    DecodeOptions { language: Some(13), without_timestamps: true, ..Default::default() }
}

#[test]
fn greedy_follows_the_network_and_stops_at_eot() {
    let model = toy_model();
    let mut nn = Fake::new(saying(vec![0, 1, 3]));
    let r = decode_window(&mut nn, &model, &opts()).unwrap();
    assert_eq!(r.tokens, vec![0, 1, 3]);
    assert_eq!(r.text, "ab d");
    assert!(r.avg_logprob < 0.0 && r.avg_logprob > -0.01);
    assert!(r.no_speech_prob > 0.0 && r.no_speech_prob < 0.01);
    // prompt head, prompt rest, then one step per sampled token (eot ends it)
    assert_eq!(nn.steps, 2 + 3);
    assert_eq!(nn.rows[0], vec![6, 13, 8, 12, 0, 1, 3]);
}

#[test]
fn previous_text_goes_before_sot_prev() {
    let model = toy_model();
    let mut nn = Fake::new(saying(vec![2]));
    let mut o = opts();
    o.previous_tokens = vec![0, 0, 1];
    decode_window(&mut nn, &model, &o).unwrap();
    assert_eq!(nn.rows[0], vec![10, 0, 0, 1, 6, 13, 8, 12, 2]);
}

#[test]
fn blank_and_control_tokens_are_suppressed() {
    let model = toy_model();
    // The network wants eot first (suppressed at the beginning), then "sot" (always suppressed).
    let mut nn = Fake::new(|seq: &[u32]| {
        let mut l = vec![0.0f32; 24];
        let sampled = seq.len().saturating_sub(4); // the prompt head [sot] is shorter
        l[if sampled == 0 { 5 } else { 6 }] = 10.0;
        l[4] = 5.0; // "e" second best
        if sampled >= 2 {
            l[5] = 20.0;
        }
        l
    });
    let r = decode_window(&mut nn, &model, &opts()).unwrap();
    assert_eq!(r.tokens, vec![4, 4]);
}

#[test]
fn timestamps_open_and_close_segments() {
    let model = toy_model();
    // <|0.00|> a b <|0.10|> eot, timestamp rules allowing it.
    let mut nn = Fake::new(saying(vec![14, 0, 1, 19]));
    let mut o = opts();
    o.without_timestamps = false;
    let r = decode_window(&mut nn, &model, &o).unwrap();
    assert_eq!(r.tokens, vec![14, 0, 1, 19]);
    assert_eq!(r.text, "ab");
}

#[test]
fn first_timestamp_is_forced_when_the_network_wants_text() {
    let model = toy_model();
    let mut nn = Fake::new(saying(vec![0, 1]));
    let mut o = opts();
    o.without_timestamps = false;
    let r = decode_window(&mut nn, &model, &o).unwrap();
    assert!(r.tokens[0] >= 14, "{:?}", r.tokens);
}

#[test]
fn beam_search_finds_the_more_likely_sequence_greedy_misses() {
    let model = toy_model();
    // Step 1: "a" slightly beats "b". After "a" the network is unsure (flat), after "b" it is
    // certain of eot. Greedy takes "a"; beam search prefers "b" eot.
    let script = |seq: &[u32]| {
        let mut l = vec![-10.0f32; 24];
        if seq.len() < 4 {
            return l; // the prompt's first part (up to sot)
        }
        let sampled = &seq[4..];
        match sampled {
            [] => {
                l[0] = 1.1;
                l[1] = 1.0;
            }
            [0] => l[0..5].fill(0.0),
            [0, ..] => l[5] = 10.0,
            [1] => l[5] = 10.0,
            _ => l[5] = 10.0,
        }
        l
    };
    let model_ref = &model;
    let greedy = decode_window(&mut Fake::new(script), model_ref, &opts()).unwrap();
    assert_eq!(greedy.tokens[0], 0);
    let mut o = opts();
    o.strategy = Strategy::Beam { beam_size: 3, patience: 1.0 };
    let mut nn = Fake::new(script);
    let beam = decode_window(&mut nn, model_ref, &o).unwrap();
    assert_eq!(beam.tokens, vec![1]);
    assert!(beam.sum_logprob > greedy.sum_logprob);
}

#[test]
fn sampling_is_deterministic_for_a_seed_and_respects_the_network() {
    let model = toy_model();
    let mut o = opts();
    o.strategy = Strategy::Sample { temperature: 1.0, best_of: 3 };
    let a = decode_window(&mut Fake::new(saying(vec![2, 2, 1])), &model, &o).unwrap();
    let b = decode_window(&mut Fake::new(saying(vec![2, 2, 1])), &model, &o).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.tokens, vec![2, 2, 1]); // the script is peaked enough to win at T=1
    assert_eq!(a.temperature, 1.0);
}

#[test]
fn language_detection_reads_the_sot_logits() {
    let model = toy_model();
    let mut nn = Fake::new(|_: &[u32]| {
        let mut l = vec![0.0f32; 24];
        l[13] = 3.0;
        l
    });
    let langs = detect_language(&mut nn, &model).unwrap();
    assert_eq!(langs[0].0, "en");
    assert!((langs[0].1 - 1.0).abs() < 1e-6);
    assert_eq!(nn.rows[0], vec![6]);
}

#[test]
fn repetitive_text_has_a_high_compression_ratio() {
    assert!(compression_ratio(&"the same words again ".repeat(20)) > 2.4);
    assert!(compression_ratio("And so, my fellow Americans, ask not what your country can do for you") < 2.0);
}

#[test]
fn top_k_matches_a_full_sort() {
    // Pseudo-random rows with ties, -inf (suppressed), NaN and +inf (never chosen).
    let mut x = 0x2545_f491_u64;
    for len in [0usize, 1, 5, 15, 16, 17, 100, 51_865] {
        let row: Vec<f32> = (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match (x % 97, i % 1000) {
                    (0, _) => f32::NEG_INFINITY,
                    (1, _) if len < 100 => f32::NAN,
                    (2, _) if len < 100 => f32::INFINITY,
                    _ => ((x >> 20) % 400) as f32 / 8.0 - 25.0,
                }
            })
            .collect();
        let mut want: Vec<u32> = (0..len as u32).filter(|&i| row[i as usize].is_finite()).collect();
        want.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        for k in [0, 1, 6, 40] {
            let got = super::top_k(&row, k);
            assert_eq!(got, want[..k.min(want.len())].to_vec(), "len {len}, k {k}");
        }
    }
}

/// A network that wants `text` (after the prompt) but is unsure of every token: the wanted one
/// gets logit 2, every other token 0, so its probability is about 1/3 at T = 1 and > 0.99 at
/// T = 0.2.
fn unsure(text: Vec<u32>) -> impl Fn(&[u32]) -> Vec<f32> {
    move |seq: &[u32]| {
        let mut l = vec![0.0f32; 24];
        let start = seq.iter().position(|t| *t == 6).unwrap();
        let after: Vec<u32> = seq[start + 1..].iter().copied().filter(|t| !(7..=13).contains(t)).collect();
        match text.get(after.len()) {
            Some(&next) => l[next as usize] = 2.0,
            None => l[5] = 10.0,
        }
        l
    }
}

#[test]
fn samples_are_scored_by_the_unscaled_distribution() {
    // openai/whisper's GreedyDecoder.update and CTranslate2's RandomSampler: a token drawn from
    // softmax(logits / T) is scored by log_softmax(logits). The same tokens thus score the same
    // at every temperature, and the same as greedy decoding gives them.
    let model = toy_model();
    let greedy = decode_window(&mut Fake::new(unsure(vec![0, 1, 3])), &model, &opts()).unwrap();
    assert_eq!(greedy.tokens, vec![0, 1, 3]);
    // About ln(e² / (e² + 15)) per token: clearly unsure.
    assert!(greedy.avg_logprob < -0.7 && greedy.avg_logprob > -1.5, "{}", greedy.avg_logprob);
    for temperature in [0.2, 0.5, 1.0] {
        let mut o = opts();
        o.strategy = Strategy::Sample { temperature, best_of: 1 };
        for seed in 1..20 {
            o.seed = seed;
            let s = decode_window(&mut Fake::new(unsure(vec![0, 1, 3])), &model, &o).unwrap();
            if s.tokens != greedy.tokens {
                continue; // a different draw: its own score, checked below
            }
            assert!((s.sum_logprob - greedy.sum_logprob).abs() < 1e-4, "T={temperature}: {} vs {}", s.sum_logprob, greedy.sum_logprob);
            assert!((s.avg_logprob - greedy.avg_logprob).abs() < 1e-4);
            for (a, b) in s.token_logprobs.iter().zip(&greedy.token_logprobs) {
                assert!((a - b).abs() < 1e-4, "T={temperature}: {:?} vs {:?}", s.token_logprobs, greedy.token_logprobs);
            }
            assert_eq!(s.temperature, temperature);
        }
    }
    // Any draw's sum is the sum of its tokens' log-probabilities (end-of-text included), each
    // no better than the wanted token's unscaled one.
    let mut o = opts();
    o.strategy = Strategy::Sample { temperature: 1.0, best_of: 1 };
    for seed in 1..40 {
        o.seed = seed;
        let s = decode_window(&mut Fake::new(unsure(vec![0, 1, 3])), &model, &o).unwrap();
        assert!(s.sum_logprob <= s.token_logprobs.iter().sum::<f32>() + 1e-4);
        assert!(s.token_logprobs.iter().all(|lp| *lp <= greedy.token_logprobs[0] + 1e-4), "{:?}", s.token_logprobs);
    }
}

#[test]
fn an_unsure_window_fails_the_logprob_threshold_at_low_temperature_too() {
    // The fallback decision (avg_logprob < -1.0 → try the next temperature) must not change
    // just because the draw was made at T = 0.2, where the scaled distribution is near-certain:
    // faster-whisper rejects these samples, so do we.
    let model = toy_model();
    let text = vec![0, 1, 3, 2, 4, 0, 1];
    let greedy = decode_window(&mut Fake::new(unsure(text.clone())), &model, &opts()).unwrap();
    assert!(greedy.avg_logprob < -1.0, "{}", greedy.avg_logprob);
    let mut o = opts();
    o.strategy = Strategy::Sample { temperature: 0.2, best_of: 5 };
    let s = decode_window(&mut Fake::new(unsure(text.clone())), &model, &o).unwrap();
    assert_eq!(s.tokens, text); // at T = 0.2 every draw takes the wanted token
    assert!(s.avg_logprob < -1.0, "T=0.2 sample accepted: avg_logprob {}", s.avg_logprob);
    assert!((s.avg_logprob - greedy.avg_logprob).abs() < 1e-4);
}

/// Several audios at once, as the decoder graph takes them: `audios` from the last encode,
/// row `i` attends to audio `i / (batch / audios)`; logits come from `script(audio, sequence)`.
struct Batched {
    audios: usize,
    rows: Vec<Vec<u32>>,
    script: fn(usize, &[u32]) -> Vec<f32>,
    steps: usize,
}

impl Inference for Batched {
    fn encode(&mut self, mel: &[f32]) -> Result<(), Error> {
        self.audios = mel.len() / (80 * 3000);
        Ok(())
    }

    fn decode(&mut self, tokens: &[u32], batch: usize, cache_index: &[u32], restart: bool, _: bool) -> Result<StepOutput, Error> {
        assert_eq!(batch % self.audios, 0, "{batch} rows for {} audios", self.audios);
        assert_eq!(cache_index.len(), batch);
        self.steps += 1;
        let t = tokens.len() / batch;
        let per_audio = batch / self.audios;
        let prev = if restart { vec![Vec::new(); batch] } else { std::mem::take(&mut self.rows) };
        self.rows = (0..batch)
            .map(|i| {
                let from = if restart { i } else { cache_index[i] as usize };
                // A row continues a row of its own audio.
                assert_eq!(from / (prev.len() / self.audios), i / per_audio, "row {i} continues row {from}");
                let mut r = prev[from].clone();
                r.extend_from_slice(&tokens[i * t..(i + 1) * t]);
                r
            })
            .collect();
        let logits = self.rows.iter().enumerate().flat_map(|(i, r)| (self.script)(i / per_audio, r)).collect();
        Ok(StepOutput { logits, alignment: None })
    }
}

/// Audio 0 says "ab d" (with a timestamp pair around it), audio 1 is unsure after its first
/// token (beam search and greedy part ways), audio 2 says "c" at once.
fn three_audios(audio: usize, seq: &[u32]) -> Vec<f32> {
    let start = seq.iter().position(|t| *t == 6).unwrap_or(seq.len());
    let after: Vec<u32> = seq.get(start + 1..).unwrap_or(&[]).iter().copied().filter(|t| !(7..=13).contains(t)).collect();
    let mut l = vec![-10.0f32; 24];
    l[11] = -1.0 - audio as f32; // different no-speech mass per audio
    match audio {
        0 => {
            let text = [14, 0, 1, 3, 19];
            l[text.get(after.len()).copied().unwrap_or(5) as usize] = 10.0;
        }
        1 => match after.as_slice() {
            [] => {
                l[14] = 10.0;
            }
            [14] => {
                l[0] = 1.1;
                l[1] = 1.0;
            }
            [14, 0] => l[0..5].fill(0.0),
            _ => l[5] = 10.0,
        },
        _ => {
            let text = [14, 2, 16];
            l[text.get(after.len()).copied().unwrap_or(5) as usize] = 10.0;
        }
    }
    l
}

#[test]
fn windows_decoded_together_get_what_each_gets_alone() {
    let model = toy_model();
    for strategy in [Strategy::Greedy, Strategy::Beam { beam_size: 3, patience: 1.0 }] {
        let mut o = opts();
        o.without_timestamps = false;
        o.strategy = strategy;
        let options: Vec<DecodeOptions> = (0..3).map(|w| DecodeOptions { seed: w, ..o.clone() }).collect();
        let mut nn = Batched { audios: 0, rows: Vec::new(), script: three_audios, steps: 0 };
        nn.encode(&vec![0.0; 3 * 80 * 3000]).unwrap();
        let together = decode_windows(&mut nn, &model, &options).unwrap();
        for (w, result) in together.iter().enumerate() {
            let mut one = Batched { audios: 0, rows: Vec::new(), script: three_audios, steps: 0 };
            one.encode(&vec![0.0; 80 * 3000]).unwrap();
            // The audio's own script, as audio 0 of a batch of one.
            one.script = [|_, s: &[u32]| three_audios(0, s), |_, s: &[u32]| three_audios(1, s), |_, s: &[u32]| three_audios(2, s)][w];
            let alone = decode_window(&mut one, &model, &options[w]).unwrap();
            assert_eq!(result.tokens, alone.tokens, "{strategy:?} window {w}");
            assert!((result.sum_logprob - alone.sum_logprob).abs() < 1e-5);
            assert!((result.no_speech_prob - alone.no_speech_prob).abs() < 1e-6);
        }
        assert_eq!(together[0].tokens, vec![14, 0, 1, 3, 19]);
        assert_eq!(together[2].tokens, vec![14, 2, 16]);
    }
    // Windows with different prompts cannot share a batch.
    let mut nn = Batched { audios: 2, rows: Vec::new(), script: three_audios, steps: 0 };
    let mut other = opts();
    other.previous_tokens = vec![0];
    assert!(decode_windows(&mut nn, &model, &[opts(), other]).is_err());
}
