//! Options of one decoding pass over one 30 s window (Whisper's `DecodingOptions`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Temperature 0: argmax.
    Greedy,
    /// Temperature > 0: `best_of` independent samples, the most likely one wins.
    Sample { temperature: f32, best_of: usize },
    /// Beam search with `beam_size` beams; stops once `round(beam_size * patience)`
    /// sequences have finished.
    Beam { beam_size: usize, patience: f32 },
}

#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub task: Task,
    /// Language token id; `None` for English-only models.
    pub language: Option<u32>,
    pub strategy: Strategy,
    /// Prompt without timestamps (`<|notimestamps|>`): text only, one segment per window.
    pub without_timestamps: bool,
    /// The first timestamp may not be later than this (Whisper: 1.0 s).
    pub max_initial_timestamp_s: f32,
    /// Suppress a blank (space) or end-of-text as the very first sampled token.
    pub suppress_blank: bool,
    /// Most tokens to sample in one window (Whisper: n_text_ctx / 2 = 224).
    pub sample_len: usize,
    /// Previous text (or the initial prompt) to condition on, already tokenized.
    pub previous_tokens: Vec<u32>,
    /// Seed of the sampler (sampling only), so a request decodes the same each time.
    pub seed: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            strategy: Strategy::Greedy,
            without_timestamps: false,
            max_initial_timestamp_s: 1.0,
            suppress_blank: true,
            sample_len: 224,
            previous_tokens: Vec::new(),
            seed: 0x5eed,
        }
    }
}
