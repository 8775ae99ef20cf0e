//! The request options that choose voice activity detection, with the names users know:
//! faster-whisper's `vad_filter` (bool) and `vad_parameters` (a JSON object of `VadOptions`
//! fields), and OpenAI's `chunking_strategy` (`auto`, or a JSON object
//! `{"type":"server_vad","threshold":…,"prefix_padding_ms":…,"silence_duration_ms":…}`, also
//! accepted as the bracketed form fields OpenAI's SDKs send, `chunking_strategy[type]=…`).
//! Every value is checked here, before any audio is decoded.

use serde_json::{Map, Value};

use super::VadOptions;
use crate::error::Error;

/// Whether to filter the audio through VAD.
#[derive(Debug, Clone, PartialEq)]
pub enum VadMode {
    /// No option given: VAD for audio longer than [`super::AUTO_MIN_SECONDS`] when the host has
    /// the VAD graph, else none.
    Auto(VadOptions),
    /// Asked for (`vad_filter=true` or a `chunking_strategy`): a host without the graph refuses.
    /// `param` names the option that asked.
    On { options: VadOptions, param: &'static str },
    Off,
}

/// OpenAI's documented defaults for `server_vad` (used for the fields a client leaves out).
const SERVER_VAD_PREFIX_PADDING_MS: f64 = 300.0;
const SERVER_VAD_SILENCE_DURATION_MS: f64 = 200.0;

/// Reads the VAD options: `filter` is `vad_filter` (already parsed as a bool), `get` looks one
/// request option up, `bracketed` lists the `chunking_strategy[key]` fields as (key, value).
pub fn parse(
    filter: Option<bool>,
    get: &dyn Fn(&str) -> Option<String>,
    bracketed: &[(String, String)],
) -> Result<VadMode, Error> {
    let mut options = match get("vad_parameters").filter(|v| !v.is_empty()) {
        Some(text) => Some(vad_parameters(&text)?),
        None => None,
    };
    let chunking = chunking_strategy(get("chunking_strategy").filter(|v| !v.is_empty()), bracketed)?;
    if let Some(chunking) = chunking {
        if filter == Some(false) {
            return Err(Error::bad_param("chunking_strategy", "chunking_strategy asks for VAD but vad_filter=false turns it off: give one of them"));
        }
        if let Some(server_vad) = chunking {
            if options.is_some() {
                return Err(Error::bad_param("chunking_strategy", "give either vad_parameters or a server_vad chunking_strategy, not both"));
            }
            options = Some(server_vad);
        }
        return Ok(VadMode::On { options: options.unwrap_or_default(), param: "chunking_strategy" });
    }
    Ok(match filter {
        Some(true) => VadMode::On { options: options.unwrap_or_default(), param: "vad_filter" },
        Some(false) => VadMode::Off,
        None => VadMode::Auto(options.unwrap_or_default()),
    })
}

fn bad(param: &'static str, message: String) -> Error {
    Error::bad_param(param, message)
}

fn object(param: &'static str, text: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(bad(param, format!("{param} must be a JSON object, not {other}"))),
        Err(e) => Err(bad(param, format!("{param} is not valid JSON ({e}): {text}"))),
    }
}

/// A number in `range` (null: keep the default).
fn number(param: &'static str, key: &str, v: &Value, range: (f64, f64), what: &str) -> Result<Option<f64>, Error> {
    if v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(x) if x >= range.0 && x <= range.1 => Ok(Some(x)),
        _ => Err(bad(param, format!("{param}: {key} must be {what}, not {v}"))),
    }
}

const NON_NEGATIVE: (f64, f64) = (0.0, f64::MAX);

/// faster-whisper's `vad_parameters`: `threshold`, `neg_threshold`, `min_speech_duration_ms`,
/// `max_speech_duration_s`, `min_silence_duration_ms`, `speech_pad_ms`.
pub fn vad_parameters(text: &str) -> Result<VadOptions, Error> {
    const P: &str = "vad_parameters";
    let mut o = VadOptions::default();
    for (key, v) in &object(P, text)? {
        let ms = |v| number(P, key, v, NON_NEGATIVE, "a number of milliseconds ≥ 0");
        match key.as_str() {
            "threshold" => set(&mut o.threshold, number(P, key, v, (0.0, 1.0), "a number from 0 to 1")?),
            "neg_threshold" => o.neg_threshold = number(P, key, v, (0.0, 1.0), "a number from 0 to 1")?.or(o.neg_threshold),
            "min_speech_duration_ms" => set(&mut o.min_speech_duration_ms, ms(v)?),
            "min_silence_duration_ms" => set(&mut o.min_silence_duration_ms, ms(v)?),
            "speech_pad_ms" => set(&mut o.speech_pad_ms, ms(v)?),
            "max_speech_duration_s" => {
                let s = number(P, key, v, (f64::MIN_POSITIVE, f64::MAX), "a number of seconds > 0")?;
                set(&mut o.max_speech_duration_s, s)
            }
            other => {
                return Err(bad(P, format!(
                    "{P}: unknown key '{other}'; known: threshold, neg_threshold, min_speech_duration_ms, \
                     max_speech_duration_s, min_silence_duration_ms, speech_pad_ms"
                )))
            }
        }
    }
    Ok(o)
}

fn set(field: &mut f64, value: Option<f64>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// `None`: not given. `Some(None)`: `auto`. `Some(Some(options))`: a `server_vad` object.
fn chunking_strategy(text: Option<String>, bracketed: &[(String, String)]) -> Result<Option<Option<VadOptions>>, Error> {
    const P: &str = "chunking_strategy";
    let map = match (text, bracketed.is_empty()) {
        (None, true) => return Ok(None),
        (Some(t), true) if t == "auto" || t == "\"auto\"" => return Ok(Some(None)),
        (Some(t), true) if t.starts_with('{') => object(P, &t)?,
        (Some(t), true) => return Err(bad(P, format!("unknown chunking_strategy '{t}': use 'auto' or a JSON object {{\"type\":\"server_vad\", …}}"))),
        (Some(_), false) => return Err(bad(P, "give chunking_strategy either as one field or as chunking_strategy[key] fields".into())),
        (None, false) => bracketed
            .iter()
            .map(|(k, v)| {
                // Form fields are text: numbers arrive as "0.5".
                let value = if k == "type" { Value::from(v.as_str()) } else { v.parse::<f64>().map(Value::from).unwrap_or_else(|_| Value::from(v.as_str())) };
                (k.clone(), value)
            })
            .collect(),
    };
    match map.get("type").and_then(Value::as_str) {
        Some("server_vad") => {}
        Some(other) => return Err(bad(P, format!("unknown chunking_strategy type '{other}': use 'server_vad' (or chunking_strategy=auto)"))),
        None => return Err(bad(P, "chunking_strategy needs \"type\": \"server_vad\"".into())),
    }
    let mut o = VadOptions {
        speech_pad_ms: SERVER_VAD_PREFIX_PADDING_MS,
        min_silence_duration_ms: SERVER_VAD_SILENCE_DURATION_MS,
        ..VadOptions::default()
    };
    for (key, v) in &map {
        let ms = |v| number(P, key, v, NON_NEGATIVE, "a number of milliseconds ≥ 0");
        match key.as_str() {
            "type" => {}
            "threshold" => set(&mut o.threshold, number(P, key, v, (0.0, 1.0), "a number from 0 to 1")?),
            "prefix_padding_ms" => set(&mut o.speech_pad_ms, ms(v)?),
            "silence_duration_ms" => set(&mut o.min_silence_duration_ms, ms(v)?),
            other => {
                return Err(bad(P, format!("chunking_strategy: unknown key '{other}'; known: type, threshold, prefix_padding_ms, silence_duration_ms")))
            }
        }
    }
    Ok(Some(Some(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fields: &[(&str, &str)]) -> Result<VadMode, Error> {
        let get = |name: &str| fields.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let bracketed: Vec<(String, String)> = fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("chunking_strategy[")?.strip_suffix(']')?.to_string(), v.to_string())))
            .collect();
        let filter = get("vad_filter").map(|v| v == "true");
        parse(filter, &get, &bracketed)
    }

    fn param_of(r: Result<VadMode, Error>) -> &'static str {
        match r {
            Err(Error::BadRequest { param: Some(p), .. }) => p,
            other => panic!("expected a 400 with a param, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_switches() {
        assert_eq!(run(&[]).unwrap(), VadMode::Auto(VadOptions::default()));
        assert_eq!(run(&[("vad_filter", "false")]).unwrap(), VadMode::Off);
        let on = run(&[("vad_filter", "true"), ("vad_parameters", r#"{"threshold":0.6,"min_silence_duration_ms":500,"max_speech_duration_s":null}"#)]);
        let VadMode::On { options, param } = on.unwrap() else { panic!() };
        assert_eq!((options.threshold, options.min_silence_duration_ms, param), (0.6, 500.0, "vad_filter"));
        assert_eq!(options.max_speech_duration_s, f64::INFINITY);
        // vad_parameters alone keeps the automatic choice, with those parameters.
        assert!(matches!(run(&[("vad_parameters", r#"{"speech_pad_ms":100}"#)]).unwrap(), VadMode::Auto(o) if o.speech_pad_ms == 100.0));
    }

    #[test]
    fn chunking_strategy_auto_and_server_vad() {
        let VadMode::On { options, param } = run(&[("chunking_strategy", "auto")]).unwrap() else { panic!() };
        assert_eq!((options, param), (VadOptions::default(), "chunking_strategy"));
        let json = r#"{"type":"server_vad","threshold":0.3,"silence_duration_ms":800}"#;
        let VadMode::On { options, .. } = run(&[("chunking_strategy", json)]).unwrap() else { panic!() };
        assert_eq!((options.threshold, options.min_silence_duration_ms, options.speech_pad_ms), (0.3, 800.0, 300.0));
        // As the OpenAI SDKs send it.
        let fields = [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[prefix_padding_ms]", "120")];
        let VadMode::On { options, .. } = run(&fields).unwrap() else { panic!() };
        assert_eq!((options.speech_pad_ms, options.min_silence_duration_ms), (120.0, 200.0));
    }

    #[test]
    fn bad_values_name_their_field() {
        for (field, value) in [
            ("vad_parameters", r#"{"threshold":1.5}"#),
            ("vad_parameters", r#"{"threshold":-0.1}"#),
            ("vad_parameters", r#"{"min_silence_duration_ms":-1}"#),
            ("vad_parameters", r#"{"speech_pad_ms":"wide"}"#),
            ("vad_parameters", r#"{"max_speech_duration_s":0}"#),
            ("vad_parameters", r#"{"window_size_samples":512}"#),
            ("vad_parameters", "threshold=0.5"),
            ("vad_parameters", "[0.5]"),
            ("chunking_strategy", "fixed"),
            ("chunking_strategy", r#"{"type":"semantic_vad"}"#),
            ("chunking_strategy", r#"{"threshold":0.5}"#),
            ("chunking_strategy", r#"{"type":"server_vad","threshold":2}"#),
            ("chunking_strategy", r#"{"type":"server_vad","eagerness":"low"}"#),
            ("chunking_strategy", "{not json"),
        ] {
            assert_eq!(param_of(run(&[(field, value)])), field, "{field}={value}");
        }
        assert_eq!(param_of(run(&[("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "high")])), "chunking_strategy");
        assert_eq!(param_of(run(&[("chunking_strategy", "auto"), ("vad_filter", "false")])), "chunking_strategy");
        let both = [("chunking_strategy", r#"{"type":"server_vad"}"#), ("vad_parameters", "{}")];
        assert_eq!(param_of(run(&both)), "chunking_strategy");
    }
}
