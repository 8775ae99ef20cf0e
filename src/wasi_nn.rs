//! `Inference` over wasi:nn@0.2.0-rc-2024-10-28 (wasm32 only). Graphs are loaded by name
//! (`<model>/encoder`, `<model>/decoder`, `<model>/meta`; see models/README.md), so the
//! component never touches model files.
//!
//! Tensors cross the boundary as little as possible: the encoder's outputs (each decoder
//! layer's cross-attention K and V, `cross_k<i>`/`cross_v<i>`) are handed to the decoder as
//! resources without ever being read into guest memory, the decoder keeps them (and
//! `cache_index`) between steps, and its self-attention cache (`present_k<i>` → `past_k<i>`,
//! `present_v<i>` → `past_v<i>`) never leaves the host. A step sends `tokens` and reads `logits`.

use crate::error::Error;
use crate::model::Model;
use crate::nn::{Engine, Inference, SpeakerNet, StepOutput, VadNet};

spin_sdk::wit_bindgen::generate!({
    path: "wit/wasi-nn.wit",
    world: "wasi:nn/ml",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

use wasi::nn::errors::{Error as NnError, ErrorCode};
use wasi::nn::graph::{self, Graph};
use wasi::nn::inference::GraphExecutionContext;
use wasi::nn::tensor::{Tensor, TensorType};

fn nn_error(what: &str) -> impl Fn(NnError) -> Error + '_ {
    move |e| Error::Inference(format!("{what}: {:?}: {}", e.code(), e.data()))
}

fn load(model: &str, graph_name: &str) -> Result<Graph, Error> {
    graph::load_by_name(&format!("{model}/{graph_name}")).map_err(|e| match e.code() {
        ErrorCode::NotFound => Error::UnknownModel(model.to_string()),
        _ => nn_error("loading graph")(e),
    })
}

fn take_output(outputs: &mut Vec<(String, Tensor)>, name: &str) -> Result<Tensor, Error> {
    let i = outputs
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| Error::Inference(format!("graph output '{name}' is missing")))?;
    Ok(outputs.swap_remove(i).1)
}

/// The tensor's data as f32 (wasm32 is little-endian, as wasi-nn's byte lists are).
fn f32s(t: &Tensor) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&t.data())
}

/// Opens models through wasi-nn.
pub struct WasiNnEngine;

impl Engine for WasiNnEngine {
    fn has_model(&mut self, model: &str) -> bool {
        graph::load_by_name(&format!("{model}/meta")).is_ok()
    }

    fn open_vad(&mut self) -> Result<Option<Box<dyn VadNet>>, Error> {
        Ok(OneGraph::open(crate::vad::GRAPH, "VAD")?.map(|g| Box::new(WasiNnVad(g)) as Box<dyn VadNet>))
    }

    fn open_speaker(&mut self) -> Result<Option<Box<dyn SpeakerNet>>, Error> {
        Ok(OneGraph::open(crate::diarize::GRAPH, "speaker")?.map(|g| Box::new(WasiNnSpeaker(g)) as Box<dyn SpeakerNet>))
    }

    fn open(&mut self, model: &str) -> Result<(Model, Box<dyn Inference>), Error> {
        let meta = load(model, "meta")?;
        let ctx = meta.init_execution_context().map_err(nn_error("meta context"))?;
        let mut out = ctx.compute(Vec::new()).map_err(nn_error("reading model meta"))?;
        let config = take_output(&mut out, "config")?.data();
        let vocab = take_output(&mut out, "vocab")?.data();
        let merges = take_output(&mut out, "merges")?.data();
        let desc = Model::from_meta(&config, &vocab, &merges)?;
        let encoder = load(model, "encoder")?;
        let decoder = load(model, "decoder")?;
        let nn = WasiNn {
            encoder_ctx: encoder.init_execution_context().map_err(nn_error("encoder context"))?,
            decoder_ctx: decoder.init_execution_context().map_err(nn_error("decoder context"))?,
            decoder,
            _encoder: encoder,
            cross: Vec::new(),
            sent_cache_index: None,
            n_mels: desc.config.dims.n_mels,
            n_layers: desc.config.dims.n_text_layer,
            n_heads: desc.config.dims.n_text_head,
            d_model: desc.config.dims.n_text_state,
        };
        Ok((desc, Box::new(nn)))
    }
}

struct WasiNn {
    encoder_ctx: GraphExecutionContext,
    decoder_ctx: GraphExecutionContext,
    /// The decoder graph, for a fresh context per window.
    decoder: Graph,
    _encoder: Graph,
    /// The latest encoder outputs (all of them are decoder inputs), until the decoder takes them.
    cross: Vec<(String, Tensor)>,
    /// `cache_index` as the decoder last received it (inputs persist in the host's context).
    sent_cache_index: Option<Vec<u32>>,
    n_mels: usize,
    n_layers: usize,
    n_heads: usize,
    d_model: usize,
}

impl Inference for WasiNn {
    fn encode(&mut self, mel: &[f32]) -> Result<(), Error> {
        // `batch` windows of [n_mels, 3000] (a shorter input is one window of fewer frames).
        let window = self.n_mels * crate::mel::N_FRAMES;
        let batch = if mel.len() > window && mel.len() % window == 0 { mel.len() / window } else { 1 };
        let frames = (mel.len() / batch / self.n_mels) as u32;
        let t = Tensor::new(&[batch as u32, self.n_mels as u32, frames], TensorType::Fp32, bytemuck::cast_slice(mel));
        // A fresh decoder context: the old one's stored inputs (the previous window's 37 MB of
        // cross K/V for base, and its self-attention cache) are freed before the encoder
        // allocates the next window's, instead of when the decoder receives them.
        self.decoder_ctx = self.decoder.init_execution_context().map_err(nn_error("decoder context"))?;
        self.sent_cache_index = None;
        self.cross = self.encoder_ctx.compute(vec![("mel".into(), t)]).map_err(nn_error("encoder"))?;
        Ok(())
    }

    fn decode(
        &mut self,
        tokens: &[u32],
        batch: usize,
        cache_index: &[u32],
        restart: bool,
        want_alignment: bool,
    ) -> Result<StepOutput, Error> {
        let t = tokens.len() / batch.max(1);
        let ids: Vec<u8> = tokens.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect();
        let mut inputs = vec![("tokens".to_string(), Tensor::new(&[batch as u32, t as u32], TensorType::I64, &ids))];
        inputs.append(&mut self.cross);
        if restart {
            // Empty caches: K is kept transposed ([B, H, dh, P]), V as [B, H, P, dh].
            let (h, dh) = (self.n_heads as u32, (self.d_model / self.n_heads.max(1)) as u32);
            for i in 0..self.n_layers {
                inputs.push((format!("past_k{i}"), Tensor::new(&[1, h, dh, 0], TensorType::Fp32, &[])));
                inputs.push((format!("past_v{i}"), Tensor::new(&[1, h, 0, dh], TensorType::Fp32, &[])));
            }
        }
        if self.sent_cache_index.as_deref() != Some(cache_index) {
            let idx: Vec<u8> = cache_index.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect();
            inputs.push(("cache_index".into(), Tensor::new(&[cache_index.len() as u32], TensorType::I64, &idx)));
            self.sent_cache_index = Some(cache_index.to_vec());
        }
        let mut out = self.decoder_ctx.compute(inputs).map_err(nn_error("decoder"))?;
        let logits = f32s(&take_output(&mut out, "logits")?);
        let alignment = if want_alignment { Some(f32s(&take_output(&mut out, "alignment")?)) } else { None };
        Ok(StepOutput { logits, alignment })
    }
}

/// An optional one-graph network (VAD, speaker encoder) and its execution context.
struct OneGraph {
    ctx: GraphExecutionContext,
    _graph: Graph,
}

impl OneGraph {
    /// `None` when the host has no graph `name` (the feature is then off, not an error).
    fn open(name: &str, what: &str) -> Result<Option<OneGraph>, Error> {
        let graph = match graph::load_by_name(name) {
            Ok(g) => g,
            Err(e) if matches!(e.code(), ErrorCode::NotFound) => return Ok(None),
            Err(e) => return Err(nn_error(&format!("loading the {what} graph"))(e)),
        };
        let ctx = graph.init_execution_context().map_err(nn_error(&format!("{what} context")))?;
        Ok(Some(OneGraph { ctx, _graph: graph }))
    }
}

/// Silero VAD: the LSTM state (`present_h`/`present_c` → `past_h`/`past_c`) stays in the host
/// between blocks; a block sends its frames and reads one probability per frame.
struct WasiNnVad(OneGraph);

impl VadNet for WasiNnVad {
    fn score(&mut self, frames: &[f32], restart: bool) -> Result<Vec<f32>, Error> {
        let width = (crate::vad::CONTEXT_SAMPLES + crate::vad::FRAME_SAMPLES) as u32;
        let n = frames.len() as u32 / width;
        let mut inputs = vec![("input".to_string(), Tensor::new(&[n, width], TensorType::Fp32, bytemuck::cast_slice(frames)))];
        if restart {
            let zeros = [0u8; 128 * 4];
            inputs.push(("past_h".into(), Tensor::new(&[1, 1, 128], TensorType::Fp32, &zeros)));
            inputs.push(("past_c".into(), Tensor::new(&[1, 1, 128], TensorType::Fp32, &zeros)));
        }
        let mut out = self.0.ctx.compute(inputs).map_err(nn_error("VAD"))?;
        Ok(f32s(&take_output(&mut out, "speech_probs")?))
    }
}

/// The speaker encoder: one call per batch of partial utterances.
struct WasiNnSpeaker(OneGraph);

impl SpeakerNet for WasiNnSpeaker {
    fn embed(&mut self, mels: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        let frames = (mels.len() / n.max(1) / crate::diarize::mel40::N_MELS) as u32;
        let shape = [n as u32, frames, crate::diarize::mel40::N_MELS as u32];
        let inputs = vec![("mels".to_string(), Tensor::new(&shape, TensorType::Fp32, bytemuck::cast_slice(mels)))];
        let mut out = self.0.ctx.compute(inputs).map_err(nn_error("speaker encoder"))?;
        Ok(f32s(&take_output(&mut out, "embeddings")?))
    }
}
