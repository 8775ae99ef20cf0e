//! A request's options, read once from the form and the query string (the form wins), and
//! its audio prepared for the model: decode → 16 kHz → log-mel.

use super::message::HttpRequest;
use crate::audio;
use crate::config::Config;
use crate::decode::Task;
use crate::error::Error;
use crate::form::{self, Form};
use crate::mel::{self, LogMel};
use crate::model::Model;
use crate::tokenizer;
use crate::transcribe::TranscribeOptions;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
