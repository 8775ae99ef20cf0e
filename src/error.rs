//! The component's one error type. Every failure a request can meet ends up here, and
//! `http.rs` maps it once to a status code and OpenAI's error JSON.

use crate::audio::AudioError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or asks for something invalid (400).
    #[error("{message}")]
    BadRequest { message: String, param: Option<&'static str> },
    /// No route at this path (404).
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    /// Wrong HTTP method for the route (405).
    #[error("method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed { method: String, allowed: &'static str },
    /// Missing or wrong API key (401).
    #[error("invalid or missing API key; send `Authorization: Bearer <key>` (or `X-API-Key: <key>`, or `?api_key=<key>`)")]
    Unauthorized,
    /// The body or a part is over a configured cap (413).
    #[error("{0}")]
    TooLarge(String),
    /// Not audio, or an audio format the decoder cannot read (415).
    #[error("{0}")]
    UnsupportedMedia(String),
    /// Audio in a supported format that cannot be decoded (422).
    #[error("{0}")]
    Undecodable(String),
    /// The model asked for is not served by this host (404 for a user-chosen model).
    #[error("model '{0}' is not available on this server")]
    UnknownModel(String),
    /// wasi-nn failed: the host's inference backend (500, details logged, not sent).
    #[error("inference failed: {0}")]
    Inference(String),
    /// A bug or broken invariant in the component (500, details logged, not sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest { message: message.into(), param: None }
    }
    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest { message: message.into(), param: Some(param) }
    }
}

impl From<AudioError> for Error {
    fn from(e: AudioError) -> Self {
        match e {
            AudioError::Unsupported { .. } => Error::UnsupportedMedia(e.to_string()),
            AudioError::TooLong { .. } => Error::TooLarge(e.to_string()),
            _ => Error::Undecodable(e.to_string()),
        }
    }
}

impl From<crate::model::ModelError> for Error {
    fn from(e: crate::model::ModelError) -> Self {
        Error::Inference(e.to_string())
    }
}
