//! The containers and codecs beyond WAV/FLAC/MP3/Ogg Vorbis/MP4: Ogg/Opus (mono and stereo),
//! WebM/Opus (as ffmpeg writes it, and as Chrome's MediaRecorder uploads it: Segment and
//! Clusters of unknown size, no duration, no Cues), Matroska/Vorbis, AIFF, CAF and MP2, on both
//! routes; then broken files of these formats. The clips are made by
//! tests/fixtures/make_e2e_fixtures.sh; the last case checks the server still transcribes jfk.

use crate::harness::{fixture, normalize, Reply, Server, Suite};

const JFK: &str = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
const ASK_NOT: &str = "ask not what your country can do for you";

pub fn register(s: &mut Suite) {
    s.add("format_ogg_opus", ogg_opus);
    s.add("format_ogg_opus_stereo", ogg_opus_stereo);
    s.add("format_webm_opus", webm_opus);
    s.add("format_webm_opus_chrome_mediarecorder", webm_opus_chrome_mediarecorder);
    s.add("format_webm_opus_mediarecorder_as_a_browser_sends_it", mediarecorder_webm_as_a_browser_sends_it);
    s.add("format_matroska_vorbis", matroska_vorbis);
    s.add("format_aiff", aiff);
    s.add("format_caf", caf);
    s.add("format_mp2", mp2);
    s.add("format_openai_route_webm_verbose_json", openai_route_webm_verbose_json);
    s.add("format_german_opus_is_detected", german_opus_is_detected);
    s.add("format_bad_truncated_opus_gives_the_audio_there", truncated_opus_gives_the_audio_there);
    s.add("format_bad_truncated_webm_mkv_give_the_audio_there", truncated_webm_mkv_give_the_audio_there);
    s.add("format_bad_opus_all_packets_invalid", opus_all_packets_invalid);
    s.add("format_bad_opus_some_packets_invalid", opus_some_packets_invalid);
    s.add("format_bad_webm_without_audio", webm_without_audio);
    s.add("format_bad_matroska_without_audio", matroska_without_audio);
    s.add("format_server_still_transcribes_jfk", still_transcribes_jfk);
}

/// The first result of a `POST /` reply, printed (transcripts differ a little across codecs).
fn result(file: &str, r: Reply) -> serde_json::Value {
    let v = r.json();
    println!("    {file}: {}", v["results"][0]);
    v["results"][0].clone()
}

fn text(r: &serde_json::Value) -> String {
    normalize(r["transcript"].as_str().unwrap_or_else(|| panic!("no transcript in {r}")))
}

/// `file` through `POST /`: jfk's words, in English, and (for `duration: Some(d)`) a duration
/// within 0.5 s of `d`. Returns the result.
fn jfk_in(s: &Server, file: &str, duration: Option<f64>) -> serde_json::Value {
    let r = result(file, s.transcribe("/", file, &[]).expect(200));
    let t = text(&r);
    assert!(t.contains(ASK_NOT), "{file}: {t}");
    assert_eq!(r["language"], "en", "{file}: {r}");
    if let Some(want) = duration {
        let d = r["duration"].as_f64().unwrap();
        assert!((d - want).abs() < 0.5, "{file}: duration {d}, expected about {want}");
    }
    r
}

fn ogg_opus(s: &Server) {
    jfk_in(s, "gen/e2e/jfk.opus", Some(11.0));
}

fn ogg_opus_stereo(s: &Server) {
    // 48 kHz stereo (the right channel at 0.7 of the left): both channels are mixed down.
    jfk_in(s, "gen/e2e/jfk_stereo.opus", Some(11.0));
}

fn webm_opus(s: &Server) {
    jfk_in(s, "gen/e2e/jfk.webm", Some(11.0));
}

fn webm_opus_chrome_mediarecorder(s: &Server) {
    // Recorded for about 12.5 s (jfk, then silence) by headless Chromium. Its live layout gives
    // no duration up front: the length is only known once every cluster has been read.
    let file = "gen/e2e/jfk_mediarecorder.webm";
    let r = jfk_in(s, file, None);
    let d = r["duration"].as_f64().unwrap();
    assert!(d > 11.5 && d < 13.5, "{file}: duration {d}, the recording is about 12.5 s");
}

fn mediarecorder_webm_as_a_browser_sends_it(s: &Server) {
    // `fetch('/', {method: 'POST', body: blob})`: a raw body typed as MediaRecorder types it.
    let file = "gen/e2e/jfk_mediarecorder.webm";
    let r = s.send("POST", "/", Some("audio/webm;codecs=opus".into()), fixture(file)).unwrap().expect(200);
    let v = result(file, r);
    assert!(text(&v).contains(ASK_NOT), "raw body: {v}");
    // `formData.append('file', blob)`: a file part named "blob", no extension to go by.
    let r = s.post_form("/", &[("file", Some("blob"), fixture(file))]).expect(200);
    let v = result(file, r);
    assert!(text(&v).contains(ASK_NOT), "multipart 'blob': {v}");
}

fn matroska_vorbis(s: &Server) {
    jfk_in(s, "gen/e2e/jfk_vorbis.mkv", Some(11.0));
}

fn aiff(s: &Server) {
    jfk_in(s, "gen/e2e/jfk.aiff", Some(11.0));
}

fn caf(s: &Server) {
    jfk_in(s, "gen/e2e/jfk.caf", Some(11.0));
}

fn mp2(s: &Server) {
    // MPEG-1 Layer II at 48 kHz, resampled to 16 kHz.
    jfk_in(s, "gen/e2e/jfk.mp2", Some(11.0));
}

fn openai_route_webm_verbose_json(s: &Server) {
    for (file, duration) in [("gen/e2e/jfk.webm", 11.0), ("gen/e2e/jfk_mediarecorder.webm", 12.5)] {
        let fields = [("model", "whisper-1"), ("response_format", "verbose_json")];
        let v = s.transcribe("/v1/audio/transcriptions", file, &fields).expect(200).json();
        assert_eq!(v["task"], "transcribe", "{file}: {v}");
        assert_eq!(v["language"], "english", "{file}: {v}");
        let t = normalize(v["text"].as_str().unwrap_or_else(|| panic!("no text in {v}")));
        assert!(t.contains(ASK_NOT), "{file}: {t}");
        let d = v["duration"].as_f64().unwrap();
        assert!((d - duration).abs() < 1.0, "{file}: duration {d}");
        assert!(v["segments"].as_array().is_some_and(|segs| !segs.is_empty()), "{file}: {v}");
    }
}

fn german_opus_is_detected(s: &Server) {
    // espeak/de.wav ("Guten Morgen. Ich möchte heute ein Buch kaufen ...") as Ogg/Opus.
    let file = "gen/e2e/espeak_de.opus";
    let r = result(file, s.transcribe("/", file, &[]).expect(200));
    assert_eq!(r["language"], "de", "{r}");
    assert!(text(&r).contains("morgen"), "{r}");
}

/// Asserts an error reply: status, OpenAI's shape, and a message containing every one of
/// `needles` (case-insensitive). Returns the `error` object.
fn expect_error(r: Reply, status: u16, needles: &[&str]) -> serde_json::Value {
    let r = r.expect(status);
    let v = r.json();
    let e = v["error"].clone();
    assert!(e["type"].is_string() && e["code"].is_string(), "error shape: {v}");
    let message = e["message"].as_str().unwrap_or_else(|| panic!("no message: {v}")).to_lowercase();
    for needle in needles {
        assert!(message.contains(&needle.to_lowercase()), "message {message:?} lacks {needle:?}");
    }
    e
}

fn truncated_opus_gives_the_audio_there(s: &Server) {
    // jfk.opus cut at 60 % of its bytes (about 6 s of audio), as bad_input.rs does for MP3,
    // FLAC and WAV: the client gets what could be decoded.
    let file = "gen/e2e/jfk_truncated.opus";
    let r = result(file, s.transcribe("/", file, &[]).expect(200));
    let t = text(&r);
    assert!(t.contains("my fellow americans"), "{file}: {t}");
    assert!(!t.contains("for your country"), "{file}: the cut part was transcribed: {t}");
    let d = r["duration"].as_f64().unwrap();
    assert!(d > 4.0 && d < 8.0, "{file}: duration {d}");
}

fn truncated_webm_mkv_give_the_audio_there(s: &Server) {
    // Cut at 60 % of the bytes: inside a cluster, with no Cues after it (ffmpeg's files) or
    // inside the unknown-size cluster being written (MediaRecorder's, as an upload cut short).
    for f in ["gen/e2e/jfk.webm", "gen/e2e/jfk_vorbis.mkv", "gen/e2e/jfk_mediarecorder.webm"] {
        let mut bytes = fixture(f);
        bytes.truncate(bytes.len() * 6 / 10);
        let name = f.rsplit('/').next().unwrap();
        let r = result(f, s.post_form("/", &[("file", Some(name), bytes)]).expect(200));
        let t = text(&r);
        // ("fellow america": the MediaRecorder recording is heard as "my fellow America".)
        assert!(t.contains("my fellow america"), "{f}: {t}");
        assert!(!t.contains("for your country"), "{f}: the cut part was transcribed: {t}");
        let d = r["duration"].as_f64().unwrap();
        assert!(d > 4.0 && d < 8.5, "{f}: duration {d}");
    }
}

fn opus_all_packets_invalid(s: &Server) {
    // Every audio packet is a code 3 packet with 0 frames (invalid, RFC 6716 3.2.5): nothing
    // decodes, so the upload is corrupt audio (422), named as Opus.
    let file = "gen/e2e/jfk_badtoc_all.opus";
    let e = expect_error(s.transcribe("/", file, &[]), 422, &["file 'file'", "opus"]);
    assert_eq!(e["code"], "undecodable_audio", "{e}");
}

fn opus_some_packets_invalid(s: &Server) {
    // One packet in 60 (9 of 551, 20 ms each) is invalid: those are skipped, the rest is jfk.
    let file = "gen/e2e/jfk_badtoc_some.opus";
    let r = result(file, s.transcribe("/", file, &[]).expect(200));
    assert!(text(&r).contains(ASK_NOT), "{file}: {r}");
    let d = r["duration"].as_f64().unwrap();
    assert!((d - 11.0).abs() < 0.5, "{file}: duration {d}");
}

fn webm_without_audio(s: &Server) {
    // 2 s of VP8 video and no audio track.
    let e = expect_error(s.transcribe("/", "gen/e2e/video_only.webm", &[]), 415, &["file 'file'", "audio track"]);
    assert_eq!(e["code"], "unsupported_media_type", "{e}");
}

fn matroska_without_audio(s: &Server) {
    // 2 s of MPEG-4 part 2 video in Matroska, no audio track.
    let e = expect_error(s.transcribe("/", "gen/e2e/video_only.mkv", &[]), 415, &["file 'file'", "audio track"]);
    assert_eq!(e["code"], "unsupported_media_type", "{e}");
}

fn still_transcribes_jfk(s: &Server) {
    s.get("/health").unwrap().expect(200);
    let v = s.transcribe("/", "gen/jfk.wav", &[]).expect(200).json();
    assert_eq!(v["results"][0]["transcript"], JFK, "{v}");
}
