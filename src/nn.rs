//! The network behind a trait, so the token loop can be tested with a scripted fake
//! (`decode::tests`) and run for real through wasi-nn (`wasi_nn.rs`, wasm32 only).

use crate::error::Error;
use crate::model::Model;

/// Opens a model by name: its description and a way to run it. One per request.
pub trait Engine {
    fn open(&mut self, model: &str) -> Result<(Model, Box<dyn Inference>), Error>;
    /// Whether a model of that name is served (for `GET /v1/models` and `GET /ready`).
    fn has_model(&mut self, model: &str) -> bool;
    /// The voice activity detector (`vad/silero`), or `None` when the host does not have it.
    fn open_vad(&mut self) -> Result<Option<Box<dyn VadNet>>, Error> {
        Ok(None)
    }
    /// The speaker encoder (`speaker/resemblyzer`), or `None` when the host does not have it.
    fn open_speaker(&mut self) -> Result<Option<Box<dyn SpeakerNet>>, Error> {
        Ok(None)
    }
}

/// Resemblyzer's speaker encoder (`diarize::GRAPH`, models/README.md).
pub trait SpeakerNet {
    /// Embeddings of `n` partial utterances: `mels` is `[n, frames, 40]` row-major (mel power
    /// spectrograms, `diarize::mel40`); the result is `[n, 256]`, each row L2-normalised.
    fn embed(&mut self, mels: &[f32], n: usize) -> Result<Vec<f32>, Error>;
}

/// Silero VAD (`vad::GRAPH`, models/README.md), one audio at a time.
pub trait VadNet {
    /// Speech probabilities of `frames`: `[n, 576]` row-major, each frame 64 samples of context
    /// (the previous frame's last ones) then 512 new samples at 16 kHz. `restart`: the first
    /// block of an audio (the LSTM state starts from zero); otherwise the network continues
    /// from the state the previous call left.
    fn score(&mut self, frames: &[f32], restart: bool) -> Result<Vec<f32>, Error>;
}

/// What one decoder step returns. Shapes are row-major.
pub struct StepOutput {
    /// `[batch, n_vocab]`: logits of the last new position of each row.
    pub logits: Vec<f32>,
    /// `[batch, n_alignment_heads, T, n_audio_ctx]`, only when asked for.
    pub alignment: Option<Vec<f32>>,
}

pub trait Inference {
    /// Encodes 30 s windows: `mel` is `[batch, n_mels, 3000]` row-major (one window, or several
    /// for batched long-form). Every later `decode` attends to them until the next `encode`,
    /// its rows grouped by window (`batch / windows` rows each, in window order).
    fn encode(&mut self, mel: &[f32]) -> Result<(), Error>;

    /// One decoder step over `tokens`: `batch` rows of equal length `T`, row-major.
    /// `restart`: begin new sequences (the self-attention cache is emptied; every row starts
    /// from nothing). Otherwise row `i` continues the cached sequence `cache_index[i]` of the
    /// previous step (beam search reorders and expands rows with it).
    fn decode(
        &mut self,
        tokens: &[u32],
        batch: usize,
        cache_index: &[u32],
        restart: bool,
        want_alignment: bool,
    ) -> Result<StepOutput, Error>;
}
