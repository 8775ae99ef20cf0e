//! Speaker diarization through the real host with the real speaker graph (`speaker/resemblyzer`,
//! loaded by the suite's host as `--model speaker`) on recordings of real people
//! (tests/fixtures/make_speaker_fixtures.sh: Kennedy, Allison Smith, a radio amateur, built into
//! conversations by conversations.py, the truth beside each in `<set>.json`).

use serde_json::Value;

use crate::harness::{fixture, Server, Suite};

const OPENAI: &str = "/v1/audio/transcriptions";

pub fn register(s: &mut Suite) {
    s.add("diarize_two_speakers_abab", two_speakers_abab);
    s.add("diarize_three_speakers", three_speakers);
    s.add("diarize_known_speakers_are_named", known_speakers_are_named);
    s.add("diarize_one_speaker_stays_one", one_speaker_stays_one);
    s.add("diarize_verbose_json_vtt_srt_and_seed_carry_the_speaker", verbose_vtt_srt_and_seed);
    s.add("diarize_bad_parameters_are_400", bad_parameters_are_400);
    s.add("diarize_host_without_the_speaker_graph", host_without_the_graph);
}

fn diarized(s: &Server, file: &str, fields: &[(&str, &str)]) -> Value {
    let mut all = vec![("response_format", "diarized_json")];
    all.extend_from_slice(fields);
    s.transcribe(OPENAI, file, &all).expect(200).json()
}

/// Each segment's speaker, consecutive repeats collapsed: the order of turns.
fn turns(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for seg in v["segments"].as_array().unwrap_or_else(|| panic!("no segments in {v}")) {
        assert_eq!(seg["type"], "transcript.text.segment", "{seg}");
        let who = seg["speaker"].as_str().unwrap_or_else(|| panic!("no speaker in {seg}")).to_string();
        if out.last() != Some(&who) {
            out.push(who);
        }
    }
    out
}

/// Every segment's speaker agrees with the truth at the segment's middle, one label per true speaker.
fn agrees_with_truth(v: &Value, set: &str) {
    let truth: Value = serde_json::from_slice(&fixture(&format!("gen/diar/{set}.json"))).unwrap();
    let mut map: Vec<(String, String)> = Vec::new();
    for seg in v["segments"].as_array().unwrap() {
        let mid = (seg["start"].as_f64().unwrap() + seg["end"].as_f64().unwrap()) / 2.0;
        let Some(turn) = truth["turns"].as_array().unwrap().iter().find(|t| t["start"].as_f64().unwrap() - 0.5 <= mid && mid <= t["end"].as_f64().unwrap() + 0.5) else {
            continue;
        };
        let (real, label) = (turn["speaker"].as_str().unwrap().to_string(), seg["speaker"].as_str().unwrap().to_string());
        match map.iter().find(|(r, _)| *r == real) {
            Some((_, l)) => assert_eq!(*l, label, "{real} was {l} before, now {label} at {mid:.1} s: {v}"),
            None => {
                assert!(!map.iter().any(|(_, l)| *l == label), "{label} is two speakers: {v}");
                map.push((real, label));
            }
        }
    }
}

/// Kennedy, Allison, Kennedy, Allison (1 s gaps) → A B A B, each segment on its true speaker.
fn two_speakers_abab(s: &Server) {
    let v = diarized(s, "gen/diar/abab.wav", &[]);
    assert_eq!(turns(&v), ["A", "B", "A", "B"], "{v}");
    agrees_with_truth(&v, "abab");
    assert_eq!(v["task"], "transcribe");
    assert!((v["duration"].as_f64().unwrap() - 36.42).abs() < 0.05, "{v}");
    let text = crate::harness::normalize(v["text"].as_str().unwrap());
    assert!(text.contains("ask not what your country can do for you"), "{text}");
    // The same with the count given.
    assert_eq!(turns(&diarized(s, "gen/diar/abab.wav", &[("num_speakers", "2")])), ["A", "B", "A", "B"]);
}

/// Allison, the radio amateur, Kennedy, Allison, the radio amateur → A B C A B.
fn three_speakers(s: &Server) {
    let v = diarized(s, "gen/diar/three.wav", &[]);
    assert_eq!(turns(&v), ["A", "B", "C", "A", "B"], "{v}");
    agrees_with_truth(&v, "three");
    let v = diarized(s, "gen/diar/three.wav", &[("min_speakers", "2"), ("max_speakers", "4")]);
    assert_eq!(turns(&v), ["A", "B", "C", "A", "B"], "{v}");
}

fn data_url(path: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = fixture(path);
    let mut out = String::from("data:audio/wav;base64,");
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// References from other recordings (Kennedy's first phrase; another prompt by Allison) name them.
fn known_speakers_are_named(s: &Server) {
    let (jfk, allison) = (data_url("gen/speakers/jfk_ref.wav"), data_url("gen/speakers/allison_ref.wav"));
    let fields = [
        ("known_speaker_names[]", "allison"),
        ("known_speaker_names[]", "kennedy"),
        ("known_speaker_references[]", allison.as_str()),
        ("known_speaker_references[]", jfk.as_str()),
    ];
    let v = diarized(s, "gen/diar/abab.wav", &fields);
    assert_eq!(turns(&v), ["kennedy", "allison", "kennedy", "allison"], "{v}");
    // A name whose voice is not in the recording is not given to anyone: the radio amateur
    // stays a letter beside the named Allison and Kennedy.
    let v = diarized(s, "gen/diar/three.wav", &fields);
    assert_eq!(turns(&v), ["allison", "A", "kennedy", "allison", "A"], "{v}");
}

/// One real speaker, 30 s in 8 utterances (Allison) or 11 s (Kennedy): one label.
fn one_speaker_stays_one(s: &Server) {
    for file in ["gen/speakers/allison.wav", "gen/jfk.wav"] {
        let v = diarized(s, file, &[]);
        assert_eq!(turns(&v), ["A"], "{file}: {v}");
    }
}

fn verbose_vtt_srt_and_seed(s: &Server) {
    let f = "gen/diar/abab.wav";
    let v = s
        .transcribe(OPENAI, f, &[("response_format", "verbose_json"), ("diarize", "true"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")])
        .expect(200)
        .json();
    let segs = v["segments"].as_array().unwrap();
    assert!(segs.iter().all(|s| s["speaker"].is_string() && s["tokens"].is_array()), "{v}");
    let words = v["words"].as_array().unwrap();
    assert!(!words.is_empty() && words.iter().all(|w| w["speaker"].is_string()), "{v}");
    // Kennedy's "country" and Allison's words differ in speaker.
    let country = words.iter().find(|w| w["word"].as_str().unwrap().starts_with("country")).unwrap();
    assert_eq!(country["speaker"], "A");
    assert_eq!(words.last().unwrap()["speaker"], "B");
    let vtt = s.transcribe(OPENAI, f, &[("response_format", "vtt"), ("diarize", "true")]).expect(200).text();
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("\n<v A>") && vtt.contains("\n<v B>"), "{vtt}");
    let srt = s.transcribe(OPENAI, f, &[("response_format", "srt"), ("diarize", "true")]).expect(200).text();
    assert!(srt.contains("\n[A] ") && srt.contains("\n[B] "), "{srt}");
    let seed = s.transcribe("/", f, &[("diarize", "true")]).expect(200).json();
    let segs = seed["results"][0]["segments"].as_array().unwrap_or_else(|| panic!("{seed}"));
    let mut order: Vec<&str> = Vec::new();
    for seg in segs {
        let who = seg["speaker"].as_str().unwrap();
        if order.last() != Some(&who) {
            order.push(who);
        }
    }
    assert_eq!(order, ["A", "B", "A", "B"], "{seed}");
    // Without diarization nothing has a speaker.
    let plain = s.transcribe(OPENAI, f, &[("response_format", "verbose_json")]).expect(200).json();
    assert!(plain["segments"].as_array().unwrap().iter().all(|s| s.get("speaker").is_none()));
}

fn bad_parameters_are_400(s: &Server) {
    let f = "gen/jfk.wav";
    let not_audio = format!("data:audio/wav;base64,{}", "VGhlc2UgYXJlIG1lZXRpbmcgbm90ZXMsIG5vdCBhdWRpby4K");
    let jfk = data_url("gen/speakers/jfk_ref.wav");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("num_speakers", "0")], "num_speakers"),
        (vec![("max_speakers", "many")], "max_speakers"),
        (vec![("min_speakers", "3"), ("max_speakers", "2")], "min_speakers"),
        (vec![("known_speaker_names[]", "a"), ("known_speaker_names[]", "b"), ("known_speaker_references[]", &jfk)], "known_speaker_names"),
        (vec![("known_speaker_names[]", "a"), ("known_speaker_references[]", &not_audio)], "known_speaker_references"),
        (vec![("known_speaker_names[]", "a"), ("known_speaker_references[]", "https://example.com/a.wav")], "known_speaker_references"),
    ];
    for (fields, param) in cases {
        let mut all = vec![("response_format", "diarized_json")];
        all.extend(fields.iter().copied());
        let r = s.transcribe(OPENAI, f, &all).expect(400).json();
        assert_eq!(r["error"]["param"], param, "{all:?}: {r}");
        assert_eq!(r["error"]["type"], "invalid_request_error");
    }
    let r = s.transcribe(OPENAI, f, &[("diarize", "maybe")]).expect(400).json();
    assert_eq!(r["error"]["param"], "diarize");
    let r = s.transcribe("/", f, &[("diarize", "true"), ("num_speakers", "0")]).expect(400).json();
    assert_eq!(r["error"]["param"], "num_speakers");
}

/// A host without `speaker/resemblyzer` (as a stock host whose provider lacks it): each way of
/// asking for speakers is a clear 400 naming the field, a bad value is still reported as such,
/// and the same host goes on transcribing.
fn host_without_the_graph(_: &Server) {
    let host = Server::start_with(&["tiny.en"], &["--env", "WHISPER_MODEL=tiny.en"]).unwrap_or_else(|e| panic!("a tiny.en host: {e}"));
    let f = "gen/jfk.wav";
    for (path, fields, param) in [
        (OPENAI, vec![("response_format", "diarized_json")], "response_format"),
        (OPENAI, vec![("diarize", "true")], "diarize"),
        ("/", vec![("diarize", "true")], "diarize"),
    ] {
        let r = host.transcribe(path, f, &fields).expect(400).json();
        let e = &r["error"];
        assert_eq!(e["param"], param, "{path} {fields:?}: {e}");
        assert!(e["message"].as_str().unwrap().contains("not available on this host"), "{e}");
    }
    let r = host.transcribe(OPENAI, f, &[("diarize", "true"), ("num_speakers", "0")]).expect(400).json();
    assert_eq!(r["error"]["param"], "num_speakers", "options are checked before the graph is asked for: {r}");
    let text = host.transcribe(OPENAI, f, &[("response_format", "text")]).expect(200).text();
    assert!(crate::harness::normalize(&text).contains("ask not what your country can do for you"), "{text}");
}
