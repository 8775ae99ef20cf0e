//! Bad and unusual input through the real host: every case asserts the status and, for errors,
//! that the JSON message names the problem; the last case checks the server still transcribes
//! jfk exactly afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{fixture, jfk_repeated_wav, normalize, Reply, Server, Suite};

const JFK: &str = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
const ASK_NOT: &str = "ask not what your country can do for you";

pub fn register(s: &mut Suite) {
    s.add("bad_empty_body", empty_body);
    s.add("bad_multipart_without_file", multipart_without_file);
    s.add("bad_text_file", text_file);
    s.add("bad_random_bytes_named_mp3", random_bytes_named_mp3);
    s.add("bad_truncated_mp3_flac_wav_give_the_audio_there", truncated_files_give_the_audio_there);
    s.add("bad_wav_header_longer_than_the_file", wav_header_longer_than_the_file);
    s.add("bad_wav_without_samples", wav_without_samples);
    s.add("odd_sample_rates_8k_96k", odd_sample_rates);
    s.add("odd_sample_formats_s24_f32", odd_sample_formats);
    s.add("odd_six_channels", six_channels);
    s.add("odd_white_noise", white_noise);
    s.add("bad_multipart_boundary", malformed_multipart);
    s.add("bad_response_format", unknown_response_format);
    s.add("bad_language_xx", unknown_language);
    s.add("bad_negative_temperature", negative_temperature);
    s.add("bad_non_utf8_prompt", non_utf8_prompt);
    s.add("odd_very_long_prompt", very_long_prompt);
    s.add("bad_thousand_tiny_parts", thousand_tiny_parts);
    s.add("bad_body_over_25_mib_is_refused_unread", body_over_limit);
    s.add("bad_slow_loris_does_not_block_the_server", slow_loris);
    s.add("bad_one_of_two_files_fails_the_request", one_bad_file_of_two);
    s.add("bad_former_decoder_panics_are_clean_errors", former_decoder_panics_are_clean_errors);
    s.add("bad_memory_limit_ends_only_its_request", memory_limit_ends_only_its_request);
    s.add("bad_input_server_still_transcribes_jfk", still_transcribes_jfk);
}

/// Asserts an error reply: status, OpenAI's shape, and a message containing `needle`
/// (case-insensitive). Returns the `error` object.
fn expect_error(r: Reply, status: u16, needle: &str) -> serde_json::Value {
    let r = r.expect(status);
    let v = r.json();
    let e = v["error"].clone();
    assert!(e["type"].is_string() && e["code"].is_string(), "error shape: {v}");
    let message = e["message"].as_str().unwrap_or_else(|| panic!("no message: {v}"));
    assert!(message.to_lowercase().contains(&needle.to_lowercase()), "message {message:?} lacks {needle:?}");
    e
}

fn transcript(r: Reply) -> String {
    let v = r.json();
    v["results"][0]["transcript"].as_str().unwrap_or_else(|| panic!("no transcript in {v}")).to_string()
}

/// Inputs that panicked inside symphonia 0.5.5's AAC and ALAC decoders and inside 0.6.1's Vorbis
/// codebook readers (found by fuzzing, in fuzz/regressions/audio/): each is a clean 4xx JSON
/// error (0.6 fixed the first; `src/audio/vorbis.rs` refuses the others before symphonia reads
/// them), and the next request is served.
fn former_decoder_panics_are_clean_errors(s: &Server) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/audio");
    let mut files: Vec<_> = ["aac-adts-zero-length-sections-oob.aac", "aac-max-sfb-past-band-table-oob.bin",
        "alac-frame-length-6gb-oom.m4a", "alac-partial-frame-length-oob.m4a", "mkv-vorbis-codeword-length-oob.mkv",
        "vorbis-lookup1-0-dimensions-panic.ogg", "vorbis-lookup1-f32-root-panic.ogg", "vorbis-lookup1-u32-overflow-panic.ogg"]
        .iter()
        .map(|f| std::path::Path::new(dir).join(f))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let r = s.post_form("/", &[("file", Some(&name), std::fs::read(&path).unwrap())]);
        let status = r.status;
        let v = r.json();
        println!("    {name}: {status} {v}");
        assert!((400..500).contains(&status), "{name}: {status} {v}");
        assert!(v["error"]["message"].is_string() && v["error"]["code"].is_string(), "{v}");
        s.get("/health").unwrap().expect(200);
    }
    assert_eq!(transcript(s.transcribe("/", "gen/jfk.wav", &[]).expect(200)), JFK);
}

/// A request whose guest needs more than `--max-memory` traps when its memory cannot grow: that
/// request alone fails (500, code `memory_limit`, naming the limit) and the same host serves the
/// next one. A 10-minute upload (19 MiB, under the body cap) needs well over 64 MiB of guest
/// memory; jfk needs under 40 MiB.
fn memory_limit_ends_only_its_request(_: &Server) {
    let host = Server::start_with(&["tiny.en"], &["--env", "WHISPER_MODEL=tiny.en", "--max-memory", "64MiB"])
        .unwrap_or_else(|e| panic!("a host capped at 64 MiB: {e}"));
    let r = host.post_form("/", &[("file", Some("ten-minutes.wav"), jfk_repeated_wav(600))]);
    let e = expect_error(r, 500, "64 MiB memory limit");
    assert_eq!(e["code"], "memory_limit", "{e}");
    host.get("/health").unwrap().expect(200);
    assert_eq!(normalize(&transcript(host.transcribe("/", "gen/jfk.wav", &[]).expect(200))), normalize(JFK));
}

/// jfk.wav's 16-bit samples (16 kHz mono).
fn jfk_samples() -> Vec<i16> {
    let bytes = fixture("gen/jfk.wav");
    let at = bytes.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    bytes[at..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// A 16-bit mono WAV; `declared` overrides the data chunk's size (and the RIFF size with it).
fn wav(samples: &[i16], rate: u32, declared: Option<u32>) -> Vec<u8> {
    let data_len = declared.unwrap_or(samples.len() as u32 * 2);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

fn empty_body(s: &Server) {
    let r = s.send("POST", "/", None, Vec::new()).unwrap();
    expect_error(r, 400, "no audio");
    let r = s.send("POST", "/v1/audio/transcriptions", Some("audio/wav".into()), Vec::new()).unwrap();
    expect_error(r, 400, "body is empty");
}

fn multipart_without_file(s: &Server) {
    let r = s.post_form("/v1/audio/transcriptions", &[("model", None, b"whisper-1".to_vec())]);
    let e = expect_error(r, 400, "no file");
    assert_eq!(e["param"], "file");
}

fn text_file(s: &Server) {
    let r = s.transcribe("/", "gen/e2e/notes.txt", &[]);
    expect_error(r, 415, "looks like text");
}

fn random_bytes_named_mp3(s: &Server) {
    // Deterministic pseudo-random bytes (xorshift), with no audio in them.
    let mut x: u32 = 0x9E37_79B9;
    let noise: Vec<u8> = (0..64_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let r = s.post_form("/", &[("file", Some("random.mp3"), noise)]);
    expect_error(r, 415, "file 'file'");
}

fn truncated_files_give_the_audio_there(s: &Server) {
    // Cut at about 60 %: the first sentence is there, the end is not. A cut file is still
    // audio: the client gets what could be decoded, as ffmpeg and Whisper would.
    for f in ["gen/jfk.mp3", "gen/jfk.flac", "gen/jfk.wav"] {
        let mut bytes = fixture(f);
        bytes.truncate(bytes.len() * 6 / 10);
        let name = f.rsplit('/').next().unwrap();
        let v = s.post_form("/", &[("file", Some(name), bytes)]).expect(200).json();
        let r = &v["results"][0];
        let text = normalize(r["transcript"].as_str().unwrap());
        assert!(text.contains("my fellow americans"), "{f}: {text}");
        assert!(!text.contains("for your country"), "{f}: the cut part was transcribed: {text}");
        let d = r["duration"].as_f64().unwrap();
        assert!(d > 4.0 && d < 8.0, "{f}: duration {d}");
    }
}

fn wav_header_longer_than_the_file(s: &Server) {
    let samples = jfk_samples();
    let bytes = wav(&samples, 16_000, Some(samples.len() as u32 * 2 * 10));
    let v = s.post_form("/", &[("file", Some("liar.wav"), bytes)]).expect(200).json();
    let r = &v["results"][0];
    assert_eq!(r["transcript"], JFK, "{v}");
    let d = r["duration"].as_f64().unwrap();
    assert!((d - 11.0).abs() < 0.1, "duration {d}");
}

fn wav_without_samples(s: &Server) {
    let r = s.post_form("/", &[("file", Some("empty.wav"), wav(&[], 16_000, None))]);
    expect_error(r, 422, "contains no samples");
    // The OpenAI route, too.
    let r = s.post_form("/v1/audio/transcriptions", &[("file", Some("empty.wav"), wav(&[], 16_000, None))]);
    expect_error(r, 422, "contains no samples");
}

fn odd_sample_rates(s: &Server) {
    for f in ["gen/e2e/jfk_8k.wav", "gen/e2e/jfk_96k.wav"] {
        let t = normalize(&transcript(s.transcribe("/", f, &[]).expect(200)));
        assert!(t.contains(ASK_NOT), "{f}: {t}");
    }
}

fn odd_sample_formats(s: &Server) {
    for f in ["gen/e2e/jfk_s24.wav", "gen/e2e/jfk_f32.wav"] {
        assert_eq!(transcript(s.transcribe("/", f, &[]).expect(200)), JFK, "{f}");
    }
}

fn six_channels(s: &Server) {
    assert_eq!(transcript(s.transcribe("/", "gen/e2e/jfk_6ch.wav", &[]).expect(200)), JFK);
}

fn white_noise(s: &Server) {
    let t = normalize(&transcript(s.transcribe("/", "gen/e2e/noise10.wav", &[("beam_size", "1")]).expect(200)));
    assert!(t.split_whitespace().count() <= 3, "text invented on noise: {t:?}");
}

fn malformed_multipart(s: &Server) {
    // No boundary parameter at all.
    let r = s.send("POST", "/", Some("multipart/form-data".into()), b"--x\r\n\r\n".to_vec()).unwrap();
    expect_error(r, 400, "multipart");
    // A boundary the body never uses.
    let body = b"--other\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--other--\r\n".to_vec();
    let r = s.send("POST", "/", Some("multipart/form-data; boundary=expected".into()), body).unwrap();
    expect_error(r, 400, "multipart");
    // A body cut before its closing boundary.
    let mut body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"jfk.wav\"\r\n\r\n".to_vec();
    body.extend_from_slice(&fixture("gen/jfk.wav")[..1000]);
    let r = s.send("POST", "/", Some("multipart/form-data; boundary=b".into()), body).unwrap();
    expect_error(r, 400, "multipart");
}

fn unknown_response_format(s: &Server) {
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[("response_format", "xml")]);
    let e = expect_error(r, 400, "response_format 'xml'");
    assert_eq!(e["param"], "response_format");
}

fn unknown_language(s: &Server) {
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[("language", "xx")]);
    let e = expect_error(r, 400, "unknown language 'xx'");
    assert_eq!(e["param"], "language");
}

fn negative_temperature(s: &Server) {
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[("temperature", "-1")]);
    let e = expect_error(r, 400, "temperature must be");
    assert_eq!(e["param"], "temperature");
}

fn non_utf8_prompt(s: &Server) {
    let r = s.post_form(
        "/v1/audio/transcriptions",
        &[("file", Some("jfk.wav"), fixture("gen/jfk.wav")), ("prompt", None, vec![b'a', 0xff, 0xfe, b'b'])],
    );
    let e = expect_error(r, 400, "'prompt' is not valid UTF-8");
    assert_eq!(e["param"], "prompt");
}

fn very_long_prompt(s: &Server) {
    // 60 KB of text: kept to its last 223 tokens, as Whisper does.
    let prompt = "Kennedy's inaugural address, January 1961. ".repeat(1400);
    assert!(prompt.len() > 59_000);
    let r = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[("prompt", &prompt)]).expect(200);
    let t = normalize(r.json()["text"].as_str().unwrap());
    assert!(t.contains(ASK_NOT), "{t}");
}

fn thousand_tiny_parts(s: &Server) {
    let files: Vec<(&str, Option<&str>, Vec<u8>)> = (0..1000).map(|_| ("f", Some("x.wav"), b"1".to_vec())).collect();
    let e = expect_error(s.post_form("/", &files), 400, "too many files");
    assert!(e["message"].as_str().unwrap().contains("16"), "{e}");
    let fields: Vec<(&str, Option<&str>, Vec<u8>)> = (0..1000).map(|_| ("x", None, b"1".to_vec())).collect();
    expect_error(s.post_form("/", &fields), 400, "too many form fields");
    s.get("/health").unwrap().expect(200);
}

fn address(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_reply(stream: &mut TcpStream, limit: Duration) -> String {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One reply with a Content-Length body is enough.
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                        .and_then(|v| v.parse::<usize>().ok());
                    if len.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn body_over_limit(s: &Server) {
    // Announce 26 MiB, send 64 KiB: the 413 comes back without the rest being sent.
    let mut stream = TcpStream::connect(address(s)).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: e2e\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\n\r\n",
        26u64 << 20
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![0u8; 64 << 10]).unwrap();
    let t = Instant::now();
    let reply = read_reply(&mut stream, Duration::from_secs(20));
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("byte limit"), "{reply}");
    assert!(t.elapsed() < Duration::from_secs(10), "the 413 took {:?}", t.elapsed());
    s.get("/health").unwrap().expect(200);
}

/// The suite's host runs with `--read-timeout 3` (see harness.rs).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

fn slow_loris(s: &Server) {
    // More stalled uploads than the host has request slots, plus one client stuck in its headers.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(address(s)).unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: e2e\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\nRIFF")
            .unwrap();
        stalled.push(stream);
    }
    let mut in_headers = TcpStream::connect(address(s)).unwrap();
    in_headers.write_all(b"POST / HTTP/1.1\r\nHost: e2e\r\nContent-Ty").unwrap();
    let stalled_at = Instant::now();

    // Meanwhile the server transcribes for others.
    let base = s.base.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let body = fixture("gen/jfk.flac");
        let reply = ureq::post(&format!("{base}/")).header("content-type", "audio/flac").send(&body[..]);
        let _ = tx.send(reply.map(|mut r| r.body_mut().read_to_string().unwrap_or_default()).map_err(|e| e.to_string()));
    });
    let body = rx.recv_timeout(Duration::from_secs(120)).expect("a request hung behind the stalled uploads").unwrap();
    assert!(body.contains(ASK_NOT), "{body}");

    // The stalled requests are dropped once the read timeout passes: 408 for a stalled body,
    // a closed connection for stalled headers.
    for mut stream in stalled {
        let reply = read_reply(&mut stream, Duration::from_secs(20));
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
        assert!(reply.contains("request_timeout") && reply.contains("seconds"), "{reply}");
    }
    let _ = read_reply(&mut in_headers, Duration::from_secs(20));
    let waited = stalled_at.elapsed();
    assert!(waited < READ_TIMEOUT + Duration::from_secs(60), "stalled requests were dropped after {waited:?}");
    s.get("/health").unwrap().expect(200);
}

fn one_bad_file_of_two(s: &Server) {
    let r = s.post_form(
        "/",
        &[("good", Some("jfk.wav"), fixture("gen/jfk.wav")), ("broken", Some("notes.txt"), fixture("gen/e2e/notes.txt"))],
    );
    expect_error(r, 415, "file 'broken'");
    let r = s.post_form(
        "/",
        &[("first", Some("empty.wav"), wav(&[], 16_000, None)), ("second", Some("jfk.wav"), fixture("gen/jfk.wav"))],
    );
    expect_error(r, 422, "file 'first'");
}

fn still_transcribes_jfk(s: &Server) {
    s.get("/health").unwrap().expect(200);
    assert_eq!(transcript(s.transcribe("/", "gen/jfk.wav", &[]).expect(200)), JFK);
    let v = s.transcribe("/v1/audio/transcriptions", "gen/jfk.wav", &[]).expect(200).json();
    assert_eq!(v["text"], JFK);
}
