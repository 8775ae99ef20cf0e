//! Entry points for the cargo-fuzz targets in `fuzz/` (and for the unit test below, which runs
//! their committed seeds and crash reproducers). Native only; not an API.
//!
//! Each function takes arbitrary bytes, runs one untrusted-input path of the component, and
//! panics only when an invariant breaks (the fuzzer's "crash"); errors from bad input are the
//! expected outcome and are checked to be well-formed.

use crate::audio::{self, AudioError};
use crate::config::Config;
use crate::error::Error;
use crate::form::{self, FormLimits};
use crate::http::{self, HttpRequest, Reply};
use crate::mel::{self, MelWindows};
use crate::model::Model;
use crate::nn::{Engine, Inference};

/// Decoded-duration cap in the audio target: keeps each input fast (a small FLAC can declare
/// hours of silence) while going through the same cap logic as `WHISPER_MAX_AUDIO_SECONDS`.
pub const AUDIO_MAX_SECONDS: f32 = 2.0;

/// Bytes → symphonia → downmix → 16 kHz → log-mel (80 mels, 128 for some inputs), and for some
/// inputs the windowed mel compared with the stored one. The format hint is picked from the length so a
/// committed seed is a plain audio file.
pub fn audio(data: &[u8]) {
    const HINTS: [Option<&str>; 9] = [
        None,
        Some("wav"),
        Some("mp3"),
        Some("flac"),
        Some("ogg"),
        Some("m4a"),
        Some("audio/aac"),
        Some("webm"),
        Some(""),
    ];
    let hint = HINTS[data.len() % HINTS.len()];
    match audio::decode_to_pcm16k(data, hint, AUDIO_MAX_SECONDS) {
        Ok(pcm) => {
            assert!(!pcm.samples.is_empty(), "Ok with no samples");
            assert!(
                pcm.source_rate > 0 && pcm.source_channels > 0,
                "{} Hz, {} ch",
                pcm.source_rate,
                pcm.source_channels
            );
            assert!(
                pcm.duration_s <= AUDIO_MAX_SECONDS + 1e-3,
                "cap exceeded: {} s",
                pcm.duration_s
            );
            // The output can only trail the input by the resampler's rounding (plus one
            // sample per mid-stream rate change); anything more is unbounded growth.
            let max_out = ((AUDIO_MAX_SECONDS + 1.0) * audio::TARGET_RATE as f32) as usize;
            assert!(
                pcm.samples.len() <= max_out,
                "{} output samples for {} s",
                pcm.samples.len(),
                pcm.duration_s
            );
            assert!(
                pcm.samples.iter().all(|s| s.is_finite()),
                "non-finite PCM sample"
            );
            // 128 mels (large-v3) and the windowed-mel comparison for some inputs only: a
            // 30 s window is 1 MB, which would dominate the time per input.
            let n_mels = if data.len() % 7 == 0 { 128 } else { 80 };
            let m = mel::log_mel(&pcm.samples, n_mels);
            assert_eq!(m.n_frames(), mel::n_frames_for(pcm.samples.len()));
            assert!(
                m.data().iter().all(|v| v.is_finite()),
                "non-finite log-mel value"
            );
            if data.len() % 5 == 0 {
                let mut windows = MelWindows::new(&pcm.samples, n_mels);
                assert_eq!(
                    windows.window(0),
                    m.window(0),
                    "MelWindows differs from LogMel"
                );
            }
        }
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "empty error message: {e:?}"
            );
            if let AudioError::TooLong { max_seconds } = e {
                assert_eq!(max_seconds, AUDIO_MAX_SECONDS);
            }
            let status = http::error_reply(&Error::from(e)).status();
            assert!(
                matches!(status, 413 | 415 | 422),
                "audio error maps to {status}"
            );
        }
    }
}

/// Limits small enough for the fuzzer to reach them.
pub const FORM_LIMITS: FormLimits = FormLimits {
    max_files: 4,
    max_fields: 8,
    max_field_bytes: 256,
};

/// An HTTP request from bytes: `[GET ]<path?query>\n<content-type>\n<body>`; with fewer than two
/// newlines, the whole input is a multipart body to `POST /` with boundary `XyZboundary`.
pub fn request_from_bytes(data: &[u8]) -> HttpRequest {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut it = data.splitn(3, |&b| b == b'\n');
    let (first, second, body) = (it.next(), it.next(), it.next());
    let (line, content_type, body) = match (first, second, body) {
        (Some(l), Some(ct), Some(body)) => (text(l), text(ct), body.to_vec()),
        _ => (
            "/".to_string(),
            "multipart/form-data; boundary=XyZboundary".to_string(),
            data.to_vec(),
        ),
    };
    let (method, path) = match line.strip_prefix("GET ") {
        Some(p) => ("GET", p.to_string()),
        None => ("POST", line),
    };
    HttpRequest {
        method: method.into(),
        path_with_query: path,
        headers: vec![("content-type".into(), content_type)],
        body: body.into(),
    }
}

/// A model registry with no models: every request stops at `engine.open`, after the form and
/// every option were parsed and checked.
struct NoModels;

impl Engine for NoModels {
    fn open(&mut self, model: &str) -> Result<(Model, Box<dyn Inference>), Error> {
        Err(Error::UnknownModel(model.to_string()))
    }
    fn has_model(&mut self, _: &str) -> bool {
        false
    }
}

/// multipart/form-data (multer) and option parsing: `form::parse` with small limits, then the
/// whole request through `http::handle` (routes, query string, options of both APIs).
pub fn multipart(data: &[u8]) {
    let req = request_from_bytes(data);
    let content_type = req.header("content-type").map(str::to_string);
    let body = req.body.in_memory().unwrap_or_default().to_vec();
    match block_on(form::parse(
        content_type.as_deref(),
        body.clone(),
        FORM_LIMITS,
    )) {
        Ok(f) => {
            assert!(
                f.files.len() <= FORM_LIMITS.max_files,
                "{} files",
                f.files.len()
            );
            assert!(
                f.fields.len() <= FORM_LIMITS.max_fields,
                "{} fields",
                f.fields.len()
            );
            assert!(f
                .fields
                .iter()
                .all(|(_, v)| v.len() <= FORM_LIMITS.max_field_bytes));
            assert!(
                f.files.iter().all(|p| !p.field.is_empty()),
                "file part without a field name"
            );
            let body_len = body.len();
            let total: usize = f.files.iter().map(|p| p.data.len()).sum::<usize>()
                + f.fields.iter().map(|(_, v)| v.len()).sum::<usize>();
            assert!(
                total <= body_len,
                "parts hold {total} bytes from a {body_len}-byte body"
            );
        }
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "empty error message: {e:?}"
        ),
    }
    let config = Config {
        form_limits: FORM_LIMITS,
        ..Config::default()
    };
    let reply = block_on(http::handle(req, &config, &mut NoModels));
    if !reply.content_type().starts_with("application/json") {
        // The page and its assets (a GET of `/` or `/assets/…`).
        assert_eq!(reply.status(), 200);
        return;
    }
    let Reply::Full { status, body, .. } = reply else {
        panic!("a stream without a model")
    };
    let v: serde_json::Value = serde_json::from_slice(&body).expect("replies are JSON");
    if status != 200 {
        assert!(status < 500, "server error {status}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.trim().is_empty(), "error without a message: {v}");
    }
}

/// Polls a future whose I/O is all in memory (every poll is ready) to completion.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every committed seed (`fuzz/corpus/<target>/seed-*`) and fixed crash (`fuzz/regressions/<target>/`)
    /// goes through the fuzz entry point again: none may panic (each asserts its invariants).
    #[test]
    fn fuzz_seeds_and_regressions_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let targets: [(&str, fn(&[u8])); 2] =
            [("audio", super::audio), ("multipart", super::multipart)];
        let mut failures = Vec::new();
        for (name, run) in targets {
            let mut n = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                let mut paths: Vec<_> = entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| {
                        dir == "regressions"
                            || p.file_name()
                                .unwrap()
                                .to_string_lossy()
                                .starts_with("seed-")
                    })
                    .collect();
                paths.sort();
                for path in paths {
                    let data = std::fs::read(&path).unwrap();
                    if std::panic::catch_unwind(|| run(&data)).is_err() {
                        failures.push(format!("fuzz target {name} fails on {}", path.display()));
                    }
                    n += 1;
                }
            }
            assert!(n >= 3, "only {n} committed inputs for fuzz target {name}");
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn request_from_bytes_forms() {
        let r = super::request_from_bytes(b"GET /v1/models?x=1\ntext/plain\nbody\nmore");
        assert_eq!(
            (r.method.as_str(), r.path_with_query.as_str()),
            ("GET", "/v1/models?x=1")
        );
        assert_eq!(r.body.in_memory(), Some(&b"body\nmore"[..]));
        let r = super::request_from_bytes(b"--XyZboundary--");
        assert_eq!(
            (r.method.as_str(), r.path_with_query.as_str()),
            ("POST", "/")
        );
        assert!(r
            .header("content-type")
            .unwrap()
            .contains("boundary=XyZboundary"));
    }
}
