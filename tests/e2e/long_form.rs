//! Batched long-form (`transcribe::batched`, the default when VAD filters the audio) through
//! the real host: on the three-minute long form it gives the sequential path's words (within
//! WER 0.02 of its error) whatever the batch size, greedy decoding keeps speech a window would
//! skip, and the options' errors are 400s.

use serde_json::Value;

use crate::harness::{fixture, normalize, Server, Suite};

const LONG: &str = "gen/e2e/long3m.wav";
const GAP: &str = "gen/e2e/speech_gap.wav";

pub fn register(s: &mut Suite) {
    s.add("long_form_batched_and_sequential_give_the_same_words", batched_and_sequential);
    s.add("long_form_greedy_batched_keeps_both_parts_of_speech_gap", greedy_keeps_both_parts);
    s.add("long_form_bad_batch_options_are_400", bad_options);
}

/// long3m.wav's words, rebuilt as tests/fixtures/make_e2e_fixtures.sh speaks them:
/// (jfk + the six sentences) three times, then jfk.
fn long_form_reference() -> String {
    let script = String::from_utf8(fixture("make_e2e_fixtures.sh")).expect("the fixture script is UTF-8");
    let block = script.split("sentences=(").nth(1).and_then(|b| b.split("\n  )").next()).expect("the sentences in the script");
    let sentences: Vec<&str> = block.split('"').skip(1).step_by(2).collect();
    assert_eq!(sentences.len(), 6, "{sentences:?}");
    let jfk = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
    let round = format!("{jfk} {}", sentences.join(" "));
    normalize(&format!("{round} {round} {round} {jfk}"))
}

/// Word error rate of `hyp` against `reference` (word-level edit distance / reference words).
fn wer(reference: &str, hyp: &str) -> f64 {
    let (r, h): (Vec<&str>, Vec<&str>) = (reference.split(' ').collect(), hyp.split(' ').collect());
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + usize::from(rw != hw));
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

fn verbose(s: &Server, file: &str, fields: &[(&str, &str)]) -> Value {
    let mut all = vec![("response_format", "verbose_json")];
    all.extend_from_slice(fields);
    s.transcribe("/v1/audio/transcriptions", file, &all).expect(200).json()
}

/// Segments in order, inside the audio, none longer than a chunk.
fn assert_ordered(v: &Value) {
    let duration = v["duration"].as_f64().unwrap();
    let mut last_end = 0.0;
    for seg in v["segments"].as_array().unwrap() {
        let (a, b) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(a >= last_end - 1e-6 && a <= b && b <= duration + 1e-6 && b - a <= 30.0, "{seg} after {last_end}");
        last_end = b;
    }
    assert!(last_end > duration - 15.0, "the last segment ends at {last_end} of {duration}");
}

fn batched_and_sequential(s: &Server) {
    let reference = long_form_reference();
    let batched = verbose(s, LONG, &[]);
    let batched4 = verbose(s, LONG, &[("batch_size", "4")]);
    let sequential = verbose(s, LONG, &[("condition_on_previous_text", "true")]);
    let words = |v: &Value| normalize(v["text"].as_str().unwrap());
    let (b, b4, q) = (wer(&reference, &words(&batched)), wer(&reference, &words(&batched4)), wer(&reference, &words(&sequential)));
    println!("    WER against the script: batched {b:.3}, batch_size=4 {b4:.3}, sequential {q:.3}");
    assert!(b <= q + 0.02, "batched WER {b:.3} vs sequential {q:.3}: {}", words(&batched));
    // fp32 base: chunks decoded together give each chunk's own result.
    assert_eq!(words(&batched4), words(&batched));
    for v in [&batched, &batched4, &sequential] {
        assert_ordered(v);
        assert_eq!(words(v).matches("ask not what your country can do for you").count(), 4, "{}", words(v));
    }
    assert_eq!(batched["duration"], sequential["duration"]);
}

/// The bug batching fixed: greedy, the sequential path glues jfk and the second part into one
/// window and skips the rest of it after a lone closing timestamp; chunks keep both.
fn greedy_keeps_both_parts(s: &Server) {
    let v = verbose(s, GAP, &[("beam_size", "1")]);
    let text = normalize(v["text"].as_str().unwrap());
    assert!(text.contains("ask not what your country can do for you"), "{text}");
    assert!(text.contains("umbrella") && text.contains("next meeting"), "{text}");
    for seg in v["segments"].as_array().unwrap() {
        let (a, b) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(b <= 12.0 || a >= 50.0, "a segment in the silence: {seg}");
    }
}

fn bad_options(s: &Server) {
    for (fields, says) in [
        (vec![("batch_size", "0")], "from 1 to 16"),
        (vec![("batch_size", "lots")], "from 1 to 16"),
        (vec![("batch_size", "2"), ("condition_on_previous_text", "true")], "give one of them"),
        (vec![("batch_size", "2"), ("vad_filter", "false")], "vad_filter=false"),
        (vec![("condition_on_previous_text", "sometimes")], "true or false"),
    ] {
        for path in ["/v1/audio/transcriptions", "/"] {
            let r = s.transcribe(path, "gen/jfk.wav", &fields).expect(400);
            let e = &r.json()["error"];
            let param = if fields.len() == 1 { fields[0].0 } else { "batch_size" };
            assert_eq!(e["param"], param, "{fields:?}: {}", r.text());
            assert!(e["message"].as_str().unwrap().contains(says), "{fields:?}: {}", r.text());
        }
    }
    // VAD off without asking for batches: the sequential path, as before.
    let v = verbose(s, "gen/jfk.wav", &[("vad_filter", "false"), ("condition_on_previous_text", "false")]);
    assert!(normalize(v["text"].as_str().unwrap()).contains("ask not what your country"), "{v}");
}
