//! HTTP in, HTTP out: routes, options, the pipeline per file, and the rendering of replies and
//! errors. The only module that knows status codes. It works on plain types (`HttpRequest`,
//! `Reply`) so it runs natively in tests; `lib.rs` adapts it to wasi:http.

use serde_json::{json, Value};

use crate::audio;
use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::form::{self, Form};
use crate::mel::{self, LogMel};
use crate::model::Model;
use crate::nn::Inference;
use crate::tokenizer;
use crate::transcribe::TranscribeOptions;
use crate::{openai, seed};

pub struct HttpRequest {
    pub method: String,
    /// Path and query, e.g. `/?language=de`.
    pub path_with_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.path_with_query.split('?').next().unwrap_or("/")
    }
    fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.path_with_query.split_once('?') else { return Vec::new() };
        q.split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// A full reply, or a stream whose body is produced while the request is processed
/// (Server-Sent Events as segments are decoded).
pub enum Reply {
    Full { status: u16, content_type: &'static str, body: Vec<u8> },
    Stream { content_type: &'static str, job: StreamJob },
}

/// Runs after the stream's headers are sent; writes body chunks through `write`.
pub type StreamJob = Box<dyn FnOnce(&mut dyn FnMut(&[u8]))>;

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Reply::Full { status, content_type: "application/json", body: v.to_string().into_bytes() }
    }

    pub fn status(&self) -> u16 {
        match self {
            Reply::Full { status, .. } => *status,
            Reply::Stream { .. } => 200,
        }
    }
}

/// Opens a model by name: its description and a way to run it. One per request.
pub trait Engine {
    fn open(&mut self, model: &str) -> Result<(Model, Box<dyn Inference>), Error>;
    /// Whether a model of that name is served (for `GET /v1/models`).
    fn has_model(&mut self, model: &str) -> bool;
}

/// Handles one request; never fails: errors become error replies.
pub async fn handle(req: HttpRequest, config: &Config, engine: &mut dyn Engine) -> Reply {
    match route(req, config, engine).await {
        Ok(reply) => reply,
        Err(e) => error_reply(&e),
    }
}

async fn route(req: HttpRequest, config: &Config, engine: &mut dyn Engine) -> Result<Reply, Error> {
    let path = req.path().trim_end_matches('/').to_string();
    let method = req.method.as_str();
    let post = |task| -> Result<Option<Task>, Error> {
        if method == "POST" { Ok(Some(task)) } else { Err(Error::MethodNotAllowed(req.method.clone())) }
    };
    match path.as_str() {
        "/health" if method == "GET" => Ok(Reply::json(200, &json!({"status": "ok"}))),
        "/health" => Err(Error::MethodNotAllowed(req.method.clone())),
        "" => {
            post(Task::Transcribe)?;
            check_api_key(&req, config)?;
            seed::transcribe_files(req, config, engine).await
        }
        "/v1/audio/transcriptions" | "/v1/audio/translations" => {
            let task = if path.ends_with("translations") { Task::Translate } else { Task::Transcribe };
            post(task)?;
            check_api_key(&req, config)?;
            openai::transcription(req, task, config, engine).await
        }
        "/v1/models" if method == "GET" => {
            check_api_key(&req, config)?;
            Ok(Reply::json(200, &openai::models(config, engine)))
        }
        _ => Err(Error::NotFound { method: req.method.clone(), path: req.path().to_string() }),
    }
}

fn check_api_key(req: &HttpRequest, config: &Config) -> Result<(), Error> {
    let Some(key) = &config.api_key else { return Ok(()) };
    let given = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
    if given == Some(key.as_str()) {
        Ok(())
    } else {
        Err(Error::Unauthorized)
    }
}

/// The request's body as a form, and its options from the query string and the form's text
/// fields (the form wins).
pub async fn read_form(req: HttpRequest, config: &Config) -> Result<(Form, Vec<(String, String)>), Error> {
    let query = req.query();
    let content_type = req.header("content-type").map(str::to_string);
    let form = form::parse(content_type.as_deref(), req.body, config.form_limits).await?;
    if form.files.is_empty() {
        return Err(Error::bad_param("file", "no file in the form: send the audio as a file field (curl -F file=@audio.mp3)"));
    }
    Ok((form, query))
}

/// Looks a request option up in the form, then the query string.
pub fn option(form: &Form, query: &[(String, String)], name: &str) -> Option<String> {
    form.field_values(name)
        .last()
        .map(str::to_string)
        .or_else(|| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .map(|v| v.trim().to_string())
}

/// Options both APIs share: model, language, task, beam, temperature, prompt.
pub fn common_options(form: &Form, query: &[(String, String)], config: &Config) -> Result<(String, TranscribeOptions), Error> {
    let get = |name: &str| option(form, query, name);
    let mut t = TranscribeOptions::default();
    if let Some(lang) = get("language").filter(|l| !l.is_empty() && l != "auto") {
        let code = tokenizer::language_code(&lang).ok_or_else(|| {
            Error::bad_param("language", format!("unknown language '{lang}': use an ISO-639-1 code such as 'en' or 'de', or omit it to detect"))
        })?;
        t.language = Some(code.to_string());
    }
    if let Some(task) = get("task") {
        t.task = match task.as_str() {
            "transcribe" | "" => Task::Transcribe,
            "translate" => Task::Translate,
            other => return Err(Error::bad_param("task", format!("unknown task '{other}': use 'transcribe' or 'translate'"))),
        };
    }
    if let Some(b) = get("beam_size").filter(|s| !s.is_empty()) {
        let n: usize = b.parse().ok().filter(|n| (1..=16).contains(n)).ok_or_else(|| {
            Error::bad_param("beam_size", format!("beam_size must be an integer from 1 to 16, not '{b}'"))
        })?;
        t.beam_size = Some(n);
    }
    if let Some(p) = get("patience").filter(|s| !s.is_empty()) {
        t.patience = p.parse().ok().filter(|v: &f32| (1.0..=10.0).contains(v)).ok_or_else(|| {
            Error::bad_param("patience", format!("patience must be a number from 1 to 10, not '{p}'"))
        })?;
    }
    if let Some(temp) = get("temperature").filter(|s| !s.is_empty()) {
        let v: f32 = temp.parse().ok().filter(|v: &f32| (0.0..=1.0).contains(v)).ok_or_else(|| {
            Error::bad_param("temperature", format!("temperature must be a number from 0 to 1, not '{temp}'"))
        })?;
        if v > 0.0 {
            // Start sampling at that temperature and fall back upwards from there.
            t.temperatures = (0..=5).map(|i| v + 0.2 * i as f32).take_while(|x| *x <= 1.0 + 1e-6).collect();
        }
    }
    if let Some(p) = get("prompt").or_else(|| get("initial_prompt")).filter(|p| !p.is_empty()) {
        t.initial_prompt = Some(p);
    }
    if let Some(v) = get("without_timestamps") {
        t.without_timestamps = parse_bool("without_timestamps", &v)?;
    }
    let model = get("model").filter(|m| !m.is_empty() && m != "whisper-1").unwrap_or_else(|| config.default_model.clone());
    Ok((model, t))
}

pub fn parse_bool(param: &'static str, v: &str) -> Result<bool, Error> {
    match v.to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(Error::bad_param(param, format!("{param} must be true or false, not '{other}'"))),
    }
}

/// The file's format hint for the decoder: its extension, else its content type.
pub fn format_hint(file: &form::FilePart) -> Option<&str> {
    file.file_name.as_deref().and_then(|n| n.rsplit_once('.').map(|(_, ext)| ext)).or(file.content_type.as_deref())
}

/// Decode → 16 kHz → log-mel, for one file.
pub fn prepare_audio(file: &form::FilePart, model: &Model, config: &Config) -> Result<LogMel, Error> {
    let pcm = audio::decode_to_pcm16k(&file.data, format_hint(file), config.max_audio_seconds)
        .map_err(|e| prefix_error(e.into(), &file.field))?;
    Ok(mel::log_mel(&pcm.samples, model.config.dims.n_mels))
}

fn prefix_error(e: Error, field: &str) -> Error {
    let p = |m: String| format!("file '{field}': {m}");
    match e {
        Error::UnsupportedMedia(m) => Error::UnsupportedMedia(p(m)),
        Error::Undecodable(m) => Error::Undecodable(p(m)),
        Error::TooLarge(m) => Error::TooLarge(p(m)),
        other => other,
    }
}

/// Status and OpenAI's error JSON. 5xx details are logged, not sent.
pub fn error_reply(e: &Error) -> Reply {
    let (status, kind, code) = match e {
        Error::BadRequest { .. } => (400, "invalid_request_error", "invalid_request"),
        Error::Unauthorized => (401, "invalid_request_error", "invalid_api_key"),
        Error::NotFound { .. } => (404, "invalid_request_error", "not_found"),
        Error::UnknownModel(_) => (404, "invalid_request_error", "model_not_found"),
        Error::MethodNotAllowed(_) => (405, "invalid_request_error", "method_not_allowed"),
        Error::TooLarge(_) => (413, "invalid_request_error", "too_large"),
        Error::UnsupportedMedia(_) => (415, "invalid_request_error", "unsupported_media_type"),
        Error::Undecodable(_) => (422, "invalid_request_error", "undecodable_audio"),
        Error::Inference(_) | Error::Internal(_) => (500, "server_error", "internal_error"),
    };
    let message = if status >= 500 {
        eprintln!("error: {e}");
        "the server failed to process the request; see its logs".to_string()
    } else {
        e.to_string()
    };
    let param = match e {
        Error::BadRequest { param, .. } => param.map(Value::from).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Reply::json(status, &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_and_percent_decoding() {
        let req = HttpRequest {
            method: "POST".into(),
            path_with_query: "/?language=de&prompt=hello%20world+again&x".into(),
            headers: vec![],
            body: vec![],
        };
        let q = req.query();
        assert_eq!(q[0], ("language".into(), "de".into()));
        assert_eq!(q[1].1, "hello world again");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn options_are_validated() {
        let cfg = Config::default();
        let form = Form::default();
        let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(common_options(&form, &q("language", "German"), &cfg).unwrap().1.language.as_deref(), Some("de"));
        assert!(common_options(&form, &q("language", "auto"), &cfg).unwrap().1.language.is_none());
        for (k, v) in [("language", "xx"), ("task", "summarize"), ("temperature", "-1"), ("beam_size", "0"), ("patience", "0.5"), ("without_timestamps", "maybe")] {
            let e = common_options(&form, &q(k, v), &cfg).unwrap_err();
            assert!(matches!(e, Error::BadRequest { param: Some(p), .. } if p == k), "{k}={v}: {e}");
        }
        let (model, _) = common_options(&form, &q("model", "whisper-1"), &cfg).unwrap();
        assert_eq!(model, cfg.default_model);
        let (_, t) = common_options(&form, &q("temperature", "0.5"), &cfg).unwrap();
        assert_eq!(t.temperatures.len(), 3);
    }

    #[test]
    fn errors_map_to_status_and_openai_shape() {
        let r = error_reply(&Error::bad_param("language", "unknown language 'xx'"));
        assert_eq!(r.status(), 400);
        let Reply::Full { body, .. } = &r else { panic!() };
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["error"]["param"], "language");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let r = error_reply(&Error::Inference("onnx said no".into()));
        assert_eq!(r.status(), 500);
        let Reply::Full { body, .. } = &r else { panic!() };
        assert!(!String::from_utf8_lossy(body).contains("onnx"));
        assert_eq!(error_reply(&Error::UnsupportedMedia("opus".into())).status(), 415);
        assert_eq!(error_reply(&Error::TooLarge("big".into())).status(), 413);
    }
}
