//! Voice activity detection through the real host with the real Silero graph (`vad/silero`,
//! loaded by the suite's host as `--model vad`): silence removed before decoding, times in the
//! original audio, no text on silence or noise, the options and their errors, and a host
//! without the graph.

use serde_json::Value;

use crate::harness::{normalize, Server, Suite};

/// jfk (0–11 s), 40 s of silence, then this from 51 s (tests/fixtures/make_e2e_fixtures.sh).
const GAP: &str = "gen/e2e/speech_gap.wav";
const JFK_WORDS: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";
const SECOND_WORDS: &str = "the weather forecast says it will rain tomorrow so bring an umbrella our next meeting will take place on tuesday morning";

pub fn register(s: &mut Suite) {
    s.add("vad_speech_gap_speech_keeps_both_parts_at_their_times", speech_gap_speech);
    s.add("vad_word_and_stream_times_are_in_the_original_audio", word_and_stream_times);
    s.add("vad_silence_and_noise_give_empty_text", silence_and_noise_give_empty_text);
    s.add("vad_on_and_off_give_the_same_words", on_and_off_give_the_same_words);
    s.add("vad_chunking_strategy_and_parameters", chunking_strategy_and_parameters);
    s.add("vad_bad_parameters_are_400_before_decoding", bad_parameters_are_400_before_decoding);
    s.add("vad_host_without_the_graph", host_without_the_graph);
}

fn verbose(s: &Server, path: &str, file: &str, fields: &[(&str, &str)]) -> Value {
    let mut all = vec![("response_format", "verbose_json")];
    all.extend_from_slice(fields);
    s.transcribe(path, file, &all).expect(200).json()
}

fn segments(v: &Value) -> Vec<(f64, f64, String)> {
    v["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {v}"))
        .iter()
        .map(|s| (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap(), normalize(s["text"].as_str().unwrap())))
        .collect()
}

/// Words of `text` that are in neither part: what the model invented.
fn invented(text: &str) -> Vec<String> {
    let known: Vec<&str> = JFK_WORDS.split(' ').chain(SECOND_WORDS.split(' ')).collect();
    // Whisper base hears "forecast says" as "forecast as", and may add "a".
    normalize(text).split(' ').filter(|w| !w.is_empty() && !known.contains(w) && !["as", "a"].contains(w)).map(String::from).collect()
}

/// The default (audio over 30 s: VAD on): both parts' words, nothing invented, the second
/// part's segments after the 40 s of silence, none inside it.
fn speech_gap_speech(s: &Server) {
    let v = verbose(s, "/v1/audio/transcriptions", GAP, &[]);
    let text = normalize(v["text"].as_str().unwrap());
    assert!(text.contains("ask not what your country can do for you"), "{text}");
    assert!(text.contains("umbrella") && text.contains("next meeting will take place"), "{text}");
    assert!(invented(&text).is_empty(), "invented {:?} in {text}", invented(&text));
    assert!(text.split(' ').count() <= 45, "{text}");
    let duration = v["duration"].as_f64().unwrap();
    assert!((duration - 59.3).abs() < 0.1, "duration {duration} (the original audio's)");
    let segs = segments(&v);
    for (start, end, text) in &segs {
        assert!(*end <= 12.0 || *start >= 50.0, "a segment in the removed silence: {start}–{end} {text}");
        if text.contains("umbrella") || text.contains("meeting") {
            assert!(*start >= 50.0 && *end <= 59.4, "second part at {start}–{end}");
        }
        if text.contains("country") {
            assert!(*end <= 12.0, "first part at {start}–{end}");
        }
    }
    assert!(segs.windows(2).all(|w| w[0].1 <= w[1].0 + 1e-6), "{segs:?}");
    // The seed API shares the option (and the default).
    let v = s.transcribe("/", GAP, &[("timestamps", "true")]).expect(200).json();
    let r = &v["results"][0];
    assert!(invented(r["transcript"].as_str().unwrap()).is_empty(), "{r}");
    let last = r["segments"].as_array().unwrap().last().unwrap().clone();
    assert!(last["start"].as_f64().unwrap() >= 50.0, "{last}");
}

fn word_and_stream_times(s: &Server) {
    let fields = [("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")];
    let v = verbose(s, "/v1/audio/transcriptions", GAP, &fields);
    let words = v["words"].as_array().unwrap();
    let at = |w: &str| words.iter().find(|x| normalize(x["word"].as_str().unwrap()) == w).unwrap_or_else(|| panic!("no {w} in {v}"));
    let fellow = at("fellow");
    assert!(fellow["start"].as_f64().unwrap() > 0.5 && fellow["end"].as_f64().unwrap() < 3.0, "{fellow}");
    let weather = at("weather");
    assert!(weather["start"].as_f64().unwrap() >= 50.6 && weather["end"].as_f64().unwrap() < 53.0, "{weather}");
    for w in words {
        let (a, b) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(a <= b && (b <= 11.5 || a >= 50.6) && b <= 59.4, "word in removed silence: {w}");
    }
    // Streamed segment events carry the same original times.
    let mut fields = fields.to_vec();
    fields.push(("stream", "true"));
    let body = s.transcribe("/v1/audio/transcriptions", GAP, &fields).expect(200).text();
    let events: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let streamed: Vec<f64> = events.iter().filter(|e| e["type"] == "transcript.text.segment").map(|e| e["start"].as_f64().unwrap()).collect();
    let replied: Vec<f64> = v["segments"].as_array().unwrap().iter().map(|s| s["start"].as_f64().unwrap()).collect();
    assert_eq!(streamed, replied, "{body}");
    assert!(streamed.last().unwrap() >= &50.0, "{streamed:?}");
}

fn silence_and_noise_give_empty_text(s: &Server) {
    for clip in ["gen/e2e/silence45.wav", "gen/e2e/noise50.wav"] {
        let v = verbose(s, "/v1/audio/transcriptions", clip, &[]);
        assert_eq!(v["text"], "", "{clip}: {v}");
        assert_eq!(v["segments"], serde_json::json!([]), "{clip}");
        assert!(v["duration"].as_f64().unwrap() >= 45.0, "{clip}: {v}");
        let v = s.transcribe("/", clip, &[]).expect(200).json();
        assert_eq!(v["results"][0]["transcript"], "", "{clip}: {v}");
    }
}

/// jfk (11 s: VAD off by default) with VAD forced on and off: the same words.
fn on_and_off_give_the_same_words(s: &Server) {
    let on = verbose(s, "/v1/audio/transcriptions", "gen/jfk.wav", &[("vad_filter", "true")]);
    let off = verbose(s, "/v1/audio/transcriptions", "gen/jfk.wav", &[("vad_filter", "false")]);
    for v in [&on, &off] {
        assert_eq!(normalize(v["text"].as_str().unwrap()), JFK_WORDS, "{v}");
        assert!((v["duration"].as_f64().unwrap() - 11.0).abs() < 0.05, "{v}");
        let segs = segments(v);
        assert!(segs.first().unwrap().0 < 0.5 && segs.last().unwrap().1 <= 11.0, "{segs:?}");
    }
    // Long audio with VAD off is decoded whole (the second part is found in the second window).
    let v = verbose(s, "/v1/audio/transcriptions", GAP, &[("vad_filter", "false")]);
    let segs = segments(&v);
    assert!(segs.iter().any(|(a, _, t)| t.contains("umbrella") && *a >= 29.0), "{segs:?}");
}

fn chunking_strategy_and_parameters(s: &Server) {
    let server_vad = r#"{"type":"server_vad","threshold":0.5,"prefix_padding_ms":200,"silence_duration_ms":500}"#;
    for fields in [
        vec![("chunking_strategy", "auto")],
        vec![("chunking_strategy", server_vad)],
        vec![("chunking_strategy[type]", "server_vad"), ("chunking_strategy[silence_duration_ms]", "300")],
        vec![("vad_filter", "true"), ("vad_parameters", r#"{"threshold":0.6,"min_silence_duration_ms":500,"speech_pad_ms":200}"#)],
    ] {
        let v = verbose(s, "/v1/audio/translations", GAP, &fields);
        let text = v["text"].as_str().unwrap();
        assert!(normalize(text).contains("ask not what your country") && text.contains("umbrella"), "{fields:?}: {text}");
        assert!(invented(text).is_empty(), "{fields:?}: {text}");
        assert!(segments(&v).last().unwrap().0 >= 50.0, "{fields:?}: {v}");
    }
}

fn bad_parameters_are_400_before_decoding(s: &Server) {
    let cases: &[(&str, &str, &str)] = &[
        ("vad_filter", "sometimes", "vad_filter"),
        ("vad_parameters", r#"{"threshold":1.2}"#, "vad_parameters"),
        ("vad_parameters", r#"{"threshold":-0.5}"#, "vad_parameters"),
        ("vad_parameters", r#"{"min_silence_duration_ms":-100}"#, "vad_parameters"),
        ("vad_parameters", r#"{"speech_pad_ms":-1}"#, "vad_parameters"),
        ("vad_parameters", r#"{"max_speech_duration_s":0}"#, "vad_parameters"),
        ("vad_parameters", r#"{"min_silence_ms":100}"#, "vad_parameters"),
        ("vad_parameters", "threshold=0.5", "vad_parameters"),
        ("chunking_strategy", "sentences", "chunking_strategy"),
        ("chunking_strategy", r#"{"type":"semantic_vad"}"#, "chunking_strategy"),
        ("chunking_strategy", r#"{"type":"server_vad","threshold":3}"#, "chunking_strategy"),
        ("chunking_strategy", r#"{"type":"server_vad","silence_duration_ms":-5}"#, "chunking_strategy"),
        ("chunking_strategy", "{\"type\":", "chunking_strategy"),
    ];
    for (field, value, param) in cases {
        for path in ["/v1/audio/transcriptions", "/"] {
            // A text file as the audio: a 415 would mean the audio was decoded first.
            let r = s.transcribe(path, "gen/e2e/notes.txt", &[(field, value)]).expect(400);
            let e = &r.json()["error"];
            assert_eq!(e["param"], *param, "{path} {field}={value}: {e}");
            assert_eq!(e["type"], "invalid_request_error", "{e}");
        }
    }
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[("chunking_strategy", "auto"), ("vad_filter", "false")]).expect(400);
    assert_eq!(r.json()["error"]["param"], "chunking_strategy");
}

/// A host that has no `vad/silero` (as a stock host whose provider lacks it): asking for VAD is
/// a clear 400; the default transcribes long audio whole, as without VAD.
fn host_without_the_graph(_: &Server) {
    let host = match Server::start_with(&["tiny.en"], &["--env", "WHISPER_MODEL=tiny.en"]) {
        Ok(h) => h,
        Err(e) => panic!("a tiny.en host: {e}"),
    };
    for (field, value) in [("vad_filter", "true"), ("chunking_strategy", "auto")] {
        let r = host.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[(field, value)]).expect(400);
        let e = &r.json()["error"];
        assert_eq!(e["param"], field, "{e}");
        assert!(e["message"].as_str().unwrap().contains("not available on this host"), "{e}");
    }
    let v = verbose(&host, "/v1/audio/transcriptions", GAP, &[("beam_size", "1")]);
    let segs = segments(&v);
    assert!(segs.iter().any(|(_, _, t)| t.contains("ask not what your country")), "{segs:?}");
    // Without VAD the second part is in the second 30 s window.
    assert!(segs.iter().any(|(a, _, t)| t.contains("umbrella") && *a >= 29.0), "{segs:?}");
}
