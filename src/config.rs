//! Configuration from environment variables only (not Spin variables), so the same .wasm
//! runs on our host, `wasmtime serve` and Spin. Our host passes `WHISPER_*` through.

use crate::form::FormLimits;

#[derive(Debug, Clone)]
pub struct Config {
    /// `WHISPER_MODEL`: model used when a request names none (and for `whisper-1`).
    pub default_model: String,
    /// `WHISPER_API_KEY`: when set, requests must send `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
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
            api_key: None,
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
        c.api_key = nonempty("WHISPER_API_KEY");
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
        assert_eq!(c.api_key, None);
        assert_eq!(c.form_limits.max_files, 3);
    }
}
