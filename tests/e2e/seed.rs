//! The seed's API (`POST /`, one result per file part, `filename` = the form field's name)
//! and Whisper CLI features behind it: language detection, translation, timestamps,
//! long-form audio, every container we decode, and the errors bad input gets.

use crate::harness::{fixture, normalize, Server, Suite};

const JFK: &str = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

pub fn register(s: &mut Suite) {
    s.add("seed_single_file_jfk_exact", seed_single_file_jfk_exact);
    s.add("seed_two_files_keep_field_names_and_order", seed_two_files_keep_field_names_and_order);
    s.add("raw_audio_body", raw_audio_body);
    s.add("every_container_gives_the_same_transcript", every_container_gives_the_same_transcript);
    s.add("alsa_48khz_sounds", alsa_48khz_sounds);
    s.add("espeak_languages_are_detected", espeak_languages_are_detected);
    s.add("language_given_is_used", language_given_is_used);
    s.add("translate_gives_english", translate_gives_english);
    s.add("timestamps_are_ordered_and_inside_the_audio", timestamps_are_ordered_and_inside_the_audio);
    s.add("long_form_three_minutes", long_form_three_minutes);
    s.add("silence_gives_no_invented_text", silence_gives_no_invented_text);
    s.add("english_only_model_by_name", english_only_model_by_name);
    s.add("beam_search_option", beam_search_option);
    s.add("errors_are_clear_json", errors_are_clear_json);
    s.add("server_still_healthy_after_bad_input", server_still_healthy_after_bad_input);
}

fn transcript(v: &serde_json::Value, i: usize) -> String {
    v["results"][i]["transcript"].as_str().unwrap_or_else(|| panic!("no transcript in {v}")).to_string()
}

fn seed_single_file_jfk_exact(s: &Server) {
    let v = s.transcribe("/", "gen/jfk.wav", &[]).expect(200).json();
    let results = v["results"].as_array().expect("results array");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["filename"], "file");
    assert_eq!(transcript(&v, 0), JFK);
    assert_eq!(results[0]["language"], "en");
    let d = results[0]["duration"].as_f64().unwrap();
    assert!((d - 11.0).abs() < 0.1, "duration {d}");
}

fn seed_two_files_keep_field_names_and_order(s: &Server) {
    let v = s
        .post_form(
            "/",
            &[
                ("file", Some("jfk.mp3"), fixture("gen/jfk.mp3")),
                ("other", Some("Front_Center.wav"), fixture("/usr/share/sounds/alsa/Front_Center.wav")),
            ],
        )
        .expect(200)
        .json();
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["filename"], "file");
    assert_eq!(r[1]["filename"], "other");
    assert!(normalize(&transcript(&v, 0)).contains("ask not what your country can do for you"));
    assert_eq!(normalize(&transcript(&v, 1)), "front center");
}

fn raw_audio_body(s: &Server) {
    let r = s.send("POST", "/", Some("audio/flac".into()), fixture("gen/jfk.flac")).unwrap().expect(200);
    let v = r.json();
    assert_eq!(v["results"][0]["filename"], "file");
    assert_eq!(transcript(&v, 0), JFK);
}

fn every_container_gives_the_same_transcript(s: &Server) {
    let reference = normalize(JFK);
    for f in ["gen/jfk.wav", "gen/jfk.flac", "gen/jfk.mp3", "gen/jfk.ogg", "gen/jfk.m4a"] {
        let v = s.transcribe("/", f, &[]).expect(200).json();
        assert_eq!(normalize(&transcript(&v, 0)), reference, "{f}");
    }
}

fn alsa_48khz_sounds(s: &Server) {
    for (name, words) in [
        ("Front_Center", "front center"),
        ("Front_Left", "front left"),
        ("Rear_Right", "rear right"),
        ("Side_Left", "side left"),
    ] {
        let path = format!("/usr/share/sounds/alsa/{name}.wav");
        let v = s.transcribe("/", &path, &[]).expect(200).json();
        assert_eq!(normalize(&transcript(&v, 0)), words, "{name}");
        assert_eq!(v["results"][0]["language"], "en");
    }
}

fn espeak_languages_are_detected(s: &Server) {
    for (lang, word) in [("de", "morgen"), ("fr", "bonjour"), ("es", "buenos")] {
        let v = s.transcribe("/", &format!("gen/espeak/{lang}.wav"), &[]).expect(200).json();
        assert_eq!(v["results"][0]["language"], lang, "{v}");
        assert!(normalize(&transcript(&v, 0)).contains(word), "{lang}: {v}");
    }
}

fn language_given_is_used(s: &Server) {
    // Query string and form field both work; the name works as well as the code.
    let v = s.transcribe("/?language=de", "gen/espeak/de.wav", &[]).expect(200).json();
    assert_eq!(v["results"][0]["language"], "de");
    assert_eq!(v["results"][0]["language_probability"], 1.0);
    let v = s.transcribe("/", "gen/espeak/es.wav", &[("language", "Spanish")]).expect(200).json();
    assert_eq!(v["results"][0]["language"], "es");
    assert!(normalize(&transcript(&v, 0)).contains("buenos d"));
}

fn translate_gives_english(s: &Server) {
    let v = s.transcribe("/", "gen/espeak/de.wav", &[("task", "translate")]).expect(200).json();
    let t = normalize(&transcript(&v, 0));
    assert!(t.contains("good morning"), "translation: {t}");
    assert!(!t.contains("morgen"), "translation still German: {t}");
}

fn timestamps_are_ordered_and_inside_the_audio(s: &Server) {
    let v = s.transcribe("/", "gen/jfk.wav", &[("timestamps", "true")]).expect(200).json();
    let r = &v["results"][0];
    let segs = r["segments"].as_array().expect("segments");
    assert!(!segs.is_empty());
    let duration = r["duration"].as_f64().unwrap();
    let mut last_end = 0.0;
    for seg in segs {
        let (a, b) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(a >= last_end - 1e-6 && a <= b && b <= duration + 1e-6, "{seg} after {last_end}");
        last_end = b;
    }
    let joined: Vec<String> = segs.iter().map(|s| s["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(normalize(&joined.join(" ")), normalize(r["transcript"].as_str().unwrap()));
    // Without the option, no segments.
    let v = s.transcribe("/", "gen/jfk.wav", &[]).expect(200).json();
    assert!(v["results"][0].get("segments").is_none());
}

fn long_form_three_minutes(s: &Server) {
    let v = s.transcribe("/", "gen/e2e/long3m.wav", &[("timestamps", "true")]).expect(200).json();
    let r = &v["results"][0];
    let duration = r["duration"].as_f64().unwrap();
    assert!(duration >= 180.0, "clip is {duration} s");
    let segs = r["segments"].as_array().unwrap();
    assert!(segs.len() >= 15, "{} segments", segs.len());
    let mut last_end = 0.0;
    for seg in segs {
        let (a, b) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(a >= last_end - 1e-6 && a <= b && b <= duration + 1e-6, "{seg} after {last_end}");
        assert!(b - a < 30.0);
        last_end = b;
    }
    // Segments reach the last part of the clip, and the speech is all there, three times.
    assert!(last_end > duration - 15.0, "last segment ends at {last_end} of {duration}");
    let text = normalize(r["transcript"].as_str().unwrap());
    assert_eq!(text.matches("ask not what your country can do for you").count(), 4, "{text}");
    assert!(text.matches("umbrella").count() >= 3, "{text}");
    assert!(text.matches("next meeting will take place").count() >= 3, "{text}");
    assert!(text.contains("weekly planning meeting"), "{text}");
}

fn silence_gives_no_invented_text(s: &Server) {
    let v = s.transcribe("/", "gen/e2e/silence10.wav", &[]).expect(200).json();
    let words = normalize(&transcript(&v, 0));
    assert!(words.split_whitespace().count() <= 1, "invented text on silence: {words:?}");
}

fn english_only_model_by_name(s: &Server) {
    let v = s.transcribe("/", "gen/jfk.wav", &[("model", "tiny.en")]).expect(200).json();
    assert!(normalize(&transcript(&v, 0)).contains("ask not what your country can do for you"), "{v}");
    assert_eq!(v["results"][0]["language"], "en");
    // An English-only model cannot translate or take another language.
    let r = s.transcribe("/", "gen/jfk.wav", &[("model", "tiny.en"), ("language", "de")]).expect(400);
    assert!(r.text().contains("English-only"), "{}", r.text());
    // Checked before a stream starts: a 400 on `task`, not a 200 whose only event is an error.
    let r = s.transcribe("/v1/audio/translations", "gen/jfk.wav", &[("model", "tiny.en"), ("stream", "true")]).expect(400);
    assert_eq!(r.json()["error"]["param"], "task", "{}", r.text());
}

fn beam_search_option(s: &Server) {
    let v = s.transcribe("/", "gen/jfk.wav", &[("beam_size", "5")]).expect(200).json();
    assert!(normalize(&transcript(&v, 0)).contains("ask not what your country can do for you"), "{v}");
    let v = s.transcribe("/", "gen/jfk.wav", &[("beam_size", "3"), ("patience", "2")]).expect(200).json();
    assert!(normalize(&transcript(&v, 0)).contains("ask not what your country can do for you"), "{v}");
    s.transcribe("/", "gen/jfk.wav", &[("patience", "0")]).expect(400);
}

fn error(r: &crate::harness::Reply) -> (String, String) {
    let v = r.json();
    let e = &v["error"];
    assert!(e["type"].is_string() && e["code"].is_string(), "error shape: {v}");
    (e["message"].as_str().unwrap().to_string(), e["code"].as_str().unwrap().to_string())
}

fn errors_are_clear_json(s: &Server) {
    // no file
    let r = s.post_form("/", &[("language", None, b"en".to_vec())]).expect(400);
    assert!(error(&r).0.contains("no file"), "{}", r.text());
    // empty body
    let r = s.send("POST", "/", None, Vec::new()).unwrap().expect(400);
    error(&r);
    // a text file
    let r = s.transcribe("/", "gen/e2e/notes.txt", &[]).expect(415);
    assert!(error(&r).0.contains("file 'file'"), "{}", r.text());
    // WMA (in ASF): a real audio format we cannot decode, named in the message
    let r = s.transcribe("/", "gen/e2e/jfk.wma", &[]).expect(415);
    assert!(error(&r).0.contains("WMA"), "{}", r.text());
    // random bytes named .mp3
    let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let r = s.post_form("/", &[("file", Some("random.mp3"), noise)]);
    assert!(r.status == 415 || r.status == 422, "{} {}", r.status, r.text());
    error(&r);
    // unknown language, unknown task
    let r = s.transcribe("/", "gen/jfk.wav", &[("language", "xx")]).expect(400);
    assert!(error(&r).0.contains("unknown language 'xx'"));
    s.transcribe("/", "gen/jfk.wav", &[("task", "summarize")]).expect(400);
    // unknown model
    let r = s.transcribe("/", "gen/jfk.wav", &[("model", "large-v9")]).expect(404);
    assert_eq!(error(&r).1, "model_not_found");
    // wrong route and method
    s.send("POST", "/nope", None, Vec::new()).unwrap().expect(404);
    s.get("/").unwrap().expect(405);
}

fn server_still_healthy_after_bad_input(s: &Server) {
    s.get("/health").unwrap().expect(200);
    let v = s.transcribe("/", "gen/jfk.wav", &[]).expect(200).json();
    assert_eq!(transcript(&v, 0), JFK);
}
