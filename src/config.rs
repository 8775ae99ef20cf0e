//! Configuration from environment variables only (not Spin variables), so the same .wasm
//! runs on our host, `wasmtime serve` and Spin. Our host passes `WHISPER_*` through.

use crate::form::FormLimits;

#[derive(Debug, Clone)]
pub struct Config {
    /// `WHISPER_MODEL`: model used when a request names none (and for `whisper-1`).
    pub default_model: String,
    /// `WHISPER_API_KEY`: one key or several (comma-separated); when set, requests must present
    /// one (`Authorization: Bearer`, `X-API-Key` or `?api_key=`, see the `api-keys` crate). An
    /// invalid list refuses every request that needs a key (500, naming the entry).
    pub api_keys: Result<api_keys::Keys, api_keys::KeyError>,
    /// `WHISPER_MAX_AUDIO_SECONDS`: longer audio is refused with 413 while decoding.
    pub max_audio_seconds: f32,
    /// `WHISPER_MAX_FILES`: files per request.
    pub form_limits: FormLimits,
    /// `WHISPER_MODELS`: comma-separated model names `GET /v1/models` offers (default: the
    /// known Whisper names the host turns out to serve).
    pub models: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_model: "base".into(),
            api_keys: Ok(api_keys::Keys::none()),
            max_audio_seconds: 3.0 * 3600.0,
            form_limits: FormLimits::default(),
            models: None,
        }
    }
}

impl Config {
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut c = Config::default();
        let nonempty = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(m) = nonempty("WHISPER_MODEL") {
            c.default_model = m;
        }
        c.api_keys = nonempty("WHISPER_API_KEY").map_or(Ok(api_keys::Keys::none()), |v| api_keys::Keys::parse(&v));
        if let Some(s) = nonempty("WHISPER_MAX_AUDIO_SECONDS").and_then(|v| v.parse().ok()) {
            c.max_audio_seconds = s;
        }
        if let Some(n) = nonempty("WHISPER_MAX_FILES").and_then(|v| v.parse().ok()) {
            c.form_limits.max_files = n;
        }
        c.models = nonempty("WHISPER_MODELS")
            .map(|v| v.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whisper_vars() {
        let c = Config::from_vars(|k| match k {
            "WHISPER_MODEL" => Some("tiny.en".into()),
            "WHISPER_API_KEY" => Some(" ".into()),
            "WHISPER_MAX_FILES" => Some("3".into()),
            _ => None,
        });
        assert_eq!(c.default_model, "tiny.en");
        assert!(c.api_keys.unwrap().is_empty());
        assert_eq!(c.form_limits.max_files, 3);
    }

    #[test]
    fn reads_several_api_keys() {
        let c = Config::from_vars(|k| (k == "WHISPER_API_KEY").then(|| "k1, k2".into()));
        assert_eq!(c.api_keys.unwrap().len(), 2);
        let c = Config::from_vars(|k| (k == "WHISPER_API_KEY").then(|| "k1,bad key".into()));
        assert_eq!(c.api_keys.unwrap_err().entry, 2);
    }
}
