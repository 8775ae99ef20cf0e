//! What the component knows about a model: its dimensions, special tokens, languages and
//! suppress lists, read from the `config` JSON of the model's `meta` graph
//! (models/README.md is the contract).

use serde::Deserialize;

use crate::tokenizer::{Tokenizer, TokenizerError};

/// One timestamp token step is 0.02 s: two mel frames, one encoder position.
pub const SECONDS_PER_TIMESTAMP: f32 = 0.02;
pub const INPUT_STRIDE: usize = 2; // mel frames per timestamp step (encoder conv2 stride)

#[derive(Debug, Clone, Deserialize)]
pub struct Dims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize, // d_model of the decoder
    pub n_text_layer: usize,
    pub n_text_head: usize,
    pub n_vocab: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub translate: u32,
    pub transcribe: u32,
    pub sot_lm: u32,
    pub sot_prev: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub multilingual: bool,
    pub dims: Dims,
    pub tokens: SpecialTokens,
    /// (code, token id), in token order. Empty for English-only models.
    #[serde(default)]
    pub languages: Vec<(String, u32)>,
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    pub alignment_heads: Vec<(usize, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model config is not valid JSON: {0}")]
    Config(#[from] serde_json::Error),
    #[error("model tokenizer: {0}")]
    Tokenizer(String),
}

impl From<TokenizerError> for ModelError {
    fn from(e: TokenizerError) -> Self {
        ModelError::Tokenizer(e.to_string())
    }
}

/// A model's config plus its tokenizer: everything the token loop needs besides inference.
pub struct Model {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    /// Tokens suppressed at every step (Whisper's `suppress_tokens="-1"`: the non-speech
    /// symbols plus the task/control tokens).
    pub suppress: Vec<u32>,
}

impl Model {
    pub fn from_meta(config: &[u8], vocab: &[u8], merges: &[u8]) -> Result<Self, ModelError> {
        let config: ModelConfig = serde_json::from_slice(config)?;
        let tokenizer = Tokenizer::new(vocab, merges, config.tokens, config.dims.n_vocab)?;
        let t = &config.tokens;
        let mut suppress = config.suppress_ids.clone();
        suppress.extend([t.transcribe, t.translate, t.sot, t.sot_prev, t.sot_lm, t.no_speech]);
        suppress.sort_unstable();
        suppress.dedup();
        Ok(Self { config, tokenizer, suppress })
    }

    pub fn special(&self) -> &SpecialTokens {
        &self.config.tokens
    }

    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.config.languages.iter().find(|(c, _)| c == code).map(|(_, id)| *id)
    }

    pub fn language_of_token(&self, token: u32) -> Option<&str> {
        self.config.languages.iter().find(|(_, id)| *id == token).map(|(c, _)| c.as_str())
    }
}
