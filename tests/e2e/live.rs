//! Transcribe while uploading, through the real host: a WAV or L16 body sent with chunked
//! transfer encoding at a live pace gets its segments as Server-Sent Events while it is still
//! being sent, and `transcript.text.done` after it ends; stalls, bad bodies and bad options.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{fixture, normalize, wav_samples_at, Server, Suite};

/// jfk (0–11 s), 40 s of silence, then this from 51 s (tests/fixtures/make_e2e_fixtures.sh).
const GAP: &str = "gen/e2e/speech_gap.wav";
const SECOND_WORDS: &str = "the weather forecast says it will rain tomorrow";

pub fn register(s: &mut Suite) {
    s.add("live_upload_gets_segments_before_it_ends", segments_before_the_upload_ends);
    s.add("live_upload_l16_words_and_times", l16_words_and_times);
    s.add("live_upload_stalled_ends_with_an_error_event", stalled_upload_ends_with_an_error_event);
    s.add("live_upload_over_the_body_limit_ends_with_an_error_event", over_the_body_limit_ends_with_an_error_event);
    s.add("live_upload_bad_bodies_and_options_are_4xx", bad_bodies_and_options_are_4xx);
}

/// What the reading side of a live upload sees.
enum Seen {
    Head(u16),
    Event(Instant, Value),
    /// A reply that is not an event stream: its body.
    Body(String),
    End,
}

/// An upload in progress: the writing side, and what the server sends as it comes.
struct Upload {
    stream: TcpStream,
    seen: Receiver<Seen>,
}

impl Upload {
    fn start(s: &Server, query: &str, content_type: &str) -> Upload {
        let mut stream = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
        let head = format!(
            "POST /v1/audio/transcriptions?{query} HTTP/1.1\r\nHost: e2e\r\nContent-Type: {content_type}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut reader = stream.try_clone().unwrap();
        let (send, seen) = channel();
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            let mut body_at = None;
            let mut chunked = false;
            let mut decoded = 0; // events of the de-chunked body already sent
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                raw.extend_from_slice(&buf[..n]);
                if body_at.is_none() {
                    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
                    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    chunked = head.contains("transfer-encoding: chunked");
                    body_at = Some(end + 4);
                    let _ = send.send(Seen::Head(status));
                }
                let body = dechunk(&raw[body_at.unwrap()..], chunked);
                let text = String::from_utf8_lossy(&body);
                let events: Vec<&str> = text.split("\n\n").collect();
                // The last piece may be incomplete.
                for e in &events[decoded..events.len() - 1] {
                    if let Some(json) = e.strip_prefix("data: ") {
                        let _ = send.send(Seen::Event(Instant::now(), serde_json::from_str(json).unwrap()));
                    }
                }
                decoded = events.len() - 1;
            }
            if let Some(at) = body_at {
                let body = dechunk(&raw[at..], chunked);
                if !body.starts_with(b"data: ") {
                    let _ = send.send(Seen::Body(String::from_utf8_lossy(&body).into_owned()));
                }
            }
            let _ = send.send(Seen::End);
        });
        Upload { stream, seen }
    }

    /// Sends one chunk; false once the server has closed the connection.
    fn send(&mut self, bytes: &[u8]) -> bool {
        let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
        chunk.extend_from_slice(bytes);
        chunk.extend_from_slice(b"\r\n");
        self.stream.write_all(&chunk).is_ok()
    }

    fn end(&mut self) {
        let _ = self.stream.write_all(b"0\r\n\r\n");
    }

    /// Everything until the server closes (at most `limit`): status, events with their arrival, other body.
    fn rest(&self, limit: Duration) -> (u16, Vec<(Instant, Value)>, String) {
        let deadline = Instant::now() + limit;
        let (mut status, mut events, mut body) = (0, Vec::new(), String::new());
        while let Ok(seen) = self.seen.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            match seen {
                Seen::Head(s) => status = s,
                Seen::Event(t, v) => events.push((t, v)),
                Seen::Body(b) => body = b,
                Seen::End => break,
            }
        }
        (status, events, body)
    }
}

/// The body of a chunked transfer as far as whole chunks have arrived.
fn dechunk(raw: &[u8], chunked: bool) -> Vec<u8> {
    if !chunked {
        return raw.to_vec();
    }
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(eol) = raw[at..].windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[at..at + eol]).trim(), 16).unwrap_or(0);
        let start = at + eol + 2;
        if size == 0 || raw.len() < start + size + 2 {
            break;
        }
        out.extend_from_slice(&raw[start..start + size]);
        at = start + size + 2;
    }
    out
}

/// A WAV's header (up to its samples) and its samples, with the data size set to the
/// "unknown length" placeholder a recorder writes to a pipe.
fn live_wav(path: &str) -> (Vec<u8>, Vec<u8>) {
    let wav = fixture(path);
    let at = wav_samples_at(&wav);
    let mut head = wav[..at].to_vec();
    head[at - 4..at].copy_from_slice(&u32::MAX.to_le_bytes());
    (head, wav[at..].to_vec())
}

/// Sends `samples` (16 kHz 16-bit mono) in 0.25 s chunks at `pace` × real time; the instant the last one left.
fn send_paced(upload: &mut Upload, samples: &[u8], pace: f64) -> Instant {
    let quarter = 16_000 / 4 * 2;
    let started = Instant::now();
    for (i, chunk) in samples.chunks(quarter).enumerate() {
        let due = started + Duration::from_secs_f64(0.25 * i as f64 / pace);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        assert!(upload.send(chunk), "the server closed the upload early");
    }
    Instant::now()
}

fn text_of(events: &[(Instant, Value)], kind: &str) -> Vec<(Instant, Value)> {
    events.iter().filter(|(_, v)| v["type"] == kind).cloned().collect()
}

fn segments_before_the_upload_ends(s: &Server) {
    let (head, samples) = live_wav(GAP);
    let mut upload = Upload::start(s, "stream=true&model=base&language=en&timestamp_granularities[]=segment", "audio/wav");
    assert!(upload.send(&head));
    // 61 s of audio at 4× real time: about 15 s of sending.
    let last_sent = send_paced(&mut upload, &samples, 4.0);
    upload.end();
    let (status, events, body) = upload.rest(Duration::from_secs(120));
    assert_eq!(status, 200, "{body}");
    // jfk's words came while the rest (40 s of silence and more speech) was still being sent.
    let early: String = text_of(&events, "transcript.text.delta")
        .iter()
        .filter(|(t, _)| *t < last_sent)
        .map(|(_, v)| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert!(normalize(&early).contains("ask not what your country can do for you"), "before the upload ended: {early:?}; all: {events:?}");

    let segments = text_of(&events, "transcript.text.segment");
    let times: Vec<(f64, f64)> = segments.iter().map(|(_, v)| (v["start"].as_f64().unwrap(), v["end"].as_f64().unwrap())).collect();
    assert!(times.windows(2).all(|w| w[0].0 <= w[1].0) && times.iter().all(|(a, b)| a < b), "{times:?}");
    // The second part is at its time in the upload (51 s on), and nothing was said in the gap.
    let late: Vec<&(f64, f64)> = times.iter().filter(|(start, _)| *start > 40.0).collect();
    assert!(!late.is_empty() && late.iter().all(|(start, _)| *start >= 49.5), "{times:?}");
    assert!(times.iter().all(|(start, end)| *end <= 12.5 || *start >= 49.5), "text in the silence: {times:?}");

    let done = text_of(&events, "transcript.text.done");
    assert_eq!(done.len(), 1, "{events:?}");
    let text = normalize(done[0].1["text"].as_str().unwrap());
    assert!(text.contains("ask what you can do for your country") && text.contains(SECOND_WORDS), "{text}");
    let seconds = samples.len() as f64 / 32_000.0;
    assert!((done[0].1["duration"].as_f64().unwrap() - seconds).abs() < 0.05, "{seconds} s: {:?}", done[0].1);
    assert_eq!(done[0].1["language"], "en");
    s.get("/health").unwrap().expect(200);
}

fn l16_words_and_times(s: &Server) {
    let (_, samples) = live_wav("gen/jfk.wav");
    let be: Vec<u8> = samples.chunks_exact(2).flat_map(|b| [b[1], b[0]]).collect();
    let mut upload = Upload::start(s, "stream=true&model=tiny.en&timestamp_granularities[]=word", "audio/L16;rate=16000;channels=1");
    send_paced(&mut upload, &be, 100.0);
    upload.end();
    let (status, events, body) = upload.rest(Duration::from_secs(60));
    assert_eq!(status, 200, "{body}");
    let done = text_of(&events, "transcript.text.done");
    let text = normalize(done[0].1["text"].as_str().unwrap());
    assert!(text.contains("ask not what your country can do for you"), "{text}");
    let words: Vec<f64> = text_of(&events, "transcript.text.segment")
        .iter()
        .flat_map(|(_, v)| v["words"].as_array().unwrap().iter().map(|w| w["start"].as_f64().unwrap()).collect::<Vec<_>>())
        .collect();
    assert!(words.len() >= 20 && words.windows(2).all(|w| w[0] <= w[1]) && *words.last().unwrap() < 11.5, "{words:?}");
}

fn stalled_upload_ends_with_an_error_event(s: &Server) {
    let (head, samples) = live_wav("gen/jfk.wav");
    let mut upload = Upload::start(s, "stream=true&model=tiny.en", "audio/wav");
    assert!(upload.send(&head));
    assert!(upload.send(&samples[..32_000]));
    // Then nothing: the suite's host gives up after its 3 s read timeout.
    let (status, events, _) = upload.rest(Duration::from_secs(30));
    assert_eq!(status, 200);
    let errors = text_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert!(errors[0].1["error"]["message"].as_str().unwrap().contains("stalled"), "{:?}", errors[0].1);
    s.get("/health").unwrap().expect(200);
}

fn over_the_body_limit_ends_with_an_error_event(_: &Server) {
    let s = Server::start_with(&["tiny.en"], &["--max-body", "256KiB"]).unwrap();
    let (head, samples) = live_wav("gen/jfk.wav");
    let mut upload = Upload::start(&s, "stream=true&model=tiny.en", "audio/wav");
    assert!(upload.send(&head));
    // 11 s of audio is 352 KB: the host cuts the body off at 256 KiB.
    for piece in samples.chunks(16_000) {
        if !upload.send(piece) {
            break;
        }
    }
    upload.end();
    let (status, events, _) = upload.rest(Duration::from_secs(60));
    assert_eq!(status, 200);
    let errors = text_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0].1["error"]["code"], "too_large", "{:?}", errors[0].1);
    assert!(text_of(&events, "transcript.text.done").is_empty(), "{events:?}");
    s.get("/health").unwrap().expect(200);
}

fn bad_bodies_and_options_are_4xx(s: &Server) {
    let (head, samples) = live_wav("gen/jfk.wav");
    let cases: [(&str, &str, Vec<u8>, u16, &str); 4] = [
        ("stream=true", "audio/wav", b"this is not a WAV file at all".to_vec(), 415, "not a RIFF WAVE"),
        ("stream=true", "audio/L16", samples[..3200].to_vec(), 415, "without a rate"),
        ("stream=true&response_format=srt", "audio/wav", head.clone(), 400, "response_format"),
        ("stream=true&diarize=true", "audio/wav", head.clone(), 400, "diarization needs the whole audio"),
    ];
    for (query, content_type, body, status, message) in cases {
        let mut upload = Upload::start(s, query, content_type);
        upload.send(&body);
        upload.end();
        let (got, _, reply) = upload.rest(Duration::from_secs(30));
        assert_eq!(got, status, "{query} {content_type}: {reply}");
        let v: Value = serde_json::from_str(&reply).unwrap_or_else(|_| panic!("not JSON: {reply}"));
        assert!(v["error"]["message"].as_str().unwrap().contains(message), "{query}: {v}");
    }
    // Silence only: no text at all.
    let mut upload = Upload::start(s, "stream=true&model=base", "audio/wav");
    upload.send(&head);
    send_paced(&mut upload, &vec![0u8; 16_000 * 2 * 8], 50.0);
    upload.end();
    let (status, events, _) = upload.rest(Duration::from_secs(60));
    assert_eq!(status, 200);
    assert!(text_of(&events, "transcript.text.delta").is_empty(), "{events:?}");
    assert_eq!(text_of(&events, "transcript.text.done")[0].1["text"], "");
    s.get("/health").unwrap().expect(200);
}
