//! wasi-nn for the host: the backends, the model registry loaded once at start-up, and the
//! per-request view of it that counts what crosses the wasm boundary.
//!
//! [`load_models`] reads `<models>/<model>/<graph>.onnx` into a [`Models`] registry, shared by all
//! requests, with the names `<model>/<graph>` (the contract in models/README.md). For each request
//! [`Models::for_request`] makes a [`GraphRegistry`] whose graphs are the same shared graphs
//! wrapped in a counter ([`NnStats`]): number of computes, time inside the backend, tensor bytes
//! in and out.

pub mod ort;
#[cfg(feature = "openvino")]
pub mod openvino;
pub mod convention;

use anyhow::{bail, Context as _};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmtime_wasi_nn::wit::Tensor;
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry};

pub use self::convention::{GraphInfo, IoInfo};

/// A backend that can load a graph file into a wasi-nn [`Graph`].
pub trait GraphLoader {
    /// Loads one graph file and describes it.
    fn load_file(&self, path: &Path) -> anyhow::Result<(Graph, GraphInfo)>;
}

/// One graph of the registry.
#[derive(Clone)]
pub struct LoadedGraph {
    pub graph: Graph,
    pub info: GraphInfo,
    /// Time the backend took to load it.
    pub load_time: Duration,
}

/// The graphs loaded at start-up, by wasi-nn name (`<model>/<graph>`).
#[derive(Clone, Default)]
pub struct Models {
    graphs: BTreeMap<String, LoadedGraph>,
}

impl Models {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a graph under `name` (replacing one of the same name).
    pub fn insert(&mut self, name: impl Into<String>, graph: LoadedGraph) {
        self.graphs.insert(name.into(), graph);
    }

    pub fn get(&self, name: &str) -> Option<&LoadedGraph> {
        self.graphs.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.graphs.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }

    /// The registry one request sees: the shared graphs, counted into `stats`.
    pub fn for_request(&self, stats: &Arc<NnStats>) -> RequestRegistry {
        let graphs = self
            .graphs
            .iter()
            .map(|(name, loaded)| {
                let counted: Box<dyn BackendGraph> = Box::new(CountedGraph {
                    name: name.clone().into(),
                    inner: loaded.graph.clone(),
                    stats: stats.clone(),
                });
                (name.clone(), Graph::from(counted))
            })
            .collect();
        RequestRegistry { graphs }
    }
}

/// Loads `<dir>/<model>/*.onnx` for each name in `models`, registering each file as
/// `<model>/<file stem>`. Any missing directory, empty directory or unreadable graph is an error
/// that names the file.
pub fn load_models(loader: &dyn GraphLoader, dir: &Path, models: &[String]) -> anyhow::Result<Models> {
    if !dir.is_dir() {
        bail!(
            "the models directory `{}` does not exist: build the models with `make models` \
             (see models/README.md) or pass --models DIR",
            dir.display()
        );
    }
    let mut registry = Models::new();
    for model in models {
        if model.is_empty() || model.contains(['/', '\\']) || model.starts_with('.') {
            bail!("invalid model name `{model}`");
        }
        let model_dir = dir.join(model);
        if !model_dir.is_dir() {
            let available: Vec<String> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            bail!(
                "model `{model}` not found: `{}` is not a directory (models in `{}`: {available:?}); \
                 build it with `make models MODELS={model}` or choose another with --model",
                model_dir.display(),
                dir.display()
            );
        }
        let mut files: Vec<_> = std::fs::read_dir(&model_dir)
            .with_context(|| format!("reading `{}`", model_dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("model `{model}`: no .onnx files in `{}`", model_dir.display());
        }
        for path in files {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let name = format!("{model}/{stem}");
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                bail!("loading graph `{name}`: `{}` is empty; rebuild it with `make models MODELS={model}`", path.display());
            }
            let start = Instant::now();
            let (graph, info) = loader
                .load_file(&path)
                .with_context(|| format!("loading graph `{name}` from `{}`", path.display()))?;
            let load_time = start.elapsed();
            tracing::info!(
                graph = %name,
                ms = load_time.as_secs_f64() * 1e3,
                inputs = %list(&info.inputs),
                outputs = %list(&info.outputs),
                carried = info.carried.len(),
                "loaded graph"
            );
            registry.insert(name, LoadedGraph { graph, info, load_time });
        }
    }
    Ok(registry)
}

/// Fails unless every model in `models` that has one of the graphs in `required` has them all
/// (`--graphs`: the Whisper models' contract, models/README.md), so a half-built model stops
/// start-up instead of failing requests. A model with none of them is another kind of model
/// (e.g. `vad`, whose only graph is `vad/silero`) and is not checked.
pub fn require_graphs(registry: &Models, dir: &Path, models: &[String], required: &[String]) -> anyhow::Result<()> {
    for model in models {
        let has = |graph: &String| registry.get(&format!("{model}/{graph}")).is_some();
        if !required.iter().filter(|g| !g.is_empty()).any(has) {
            continue;
        }
        for graph in required.iter().filter(|g| !g.is_empty()) {
            if registry.get(&format!("{model}/{graph}")).is_none() {
                bail!(
                    "model `{model}` is incomplete: `{}` is missing (every model needs {}; see --graphs); \
                     rebuild it with `make models MODELS={model}`",
                    dir.join(model).join(format!("{graph}.onnx")).display(),
                    required.iter().filter(|g| !g.is_empty()).cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(())
}

fn list(items: &[IoInfo]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The [`GraphRegistry`] of one request (see [`Models::for_request`]).
pub struct RequestRegistry {
    graphs: HashMap<String, Graph>,
}

impl GraphRegistry for RequestRegistry {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.graphs.get(name)
    }
    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.graphs.get_mut(name)
    }
}

/// Counters for one graph within one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphCounters {
    pub graph: Arc<str>,
    /// `compute` calls (failed ones included).
    pub computes: u64,
    pub failed: u64,
    /// Time inside the backend's `compute` (validation, inference and output copies).
    pub time: Duration,
    /// Tensor data of the `compute` inputs. A tensor resource the guest got from another
    /// `compute` and passes on (e.g. the encoder's `cross_k<i>`/`cross_v<i>`) counts here without
    /// entering guest memory.
    pub bytes_in: u64,
    /// Tensor data of the `compute` outputs (copied into guest memory only if the guest reads
    /// them with `tensor.data`).
    pub bytes_out: u64,
}

/// What one request did with wasi-nn, per graph, in first-use order.
#[derive(Debug, Default)]
pub struct NnStats {
    graphs: Mutex<Vec<GraphCounters>>,
}

impl NnStats {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn record(&self, graph: &Arc<str>, time: Duration, bytes_in: u64, bytes_out: u64, ok: bool) {
        let mut graphs = self.graphs.lock().unwrap_or_else(|e| e.into_inner());
        let counters = match graphs.iter().position(|c| c.graph == *graph) {
            Some(i) => &mut graphs[i],
            None => {
                graphs.push(GraphCounters { graph: graph.clone(), ..Default::default() });
                graphs.last_mut().expect("just pushed")
            }
        };
        counters.computes += 1;
        counters.failed += u64::from(!ok);
        counters.time += time;
        counters.bytes_in += bytes_in;
        counters.bytes_out += bytes_out;
    }

    /// The counters so far.
    pub fn snapshot(&self) -> Vec<GraphCounters> {
        self.graphs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sum over all graphs.
    pub fn total(&self) -> GraphCounters {
        self.snapshot().into_iter().fold(GraphCounters { graph: "all".into(), ..Default::default() }, |mut t, c| {
            t.computes += c.computes;
            t.failed += c.failed;
            t.time += c.time;
            t.bytes_in += c.bytes_in;
            t.bytes_out += c.bytes_out;
            t
        })
    }

    /// One line for the request log, e.g.
    /// `base/encoder: 1× 301.2 ms in 0.96 MB out 36.86 MB; base/decoder: 24× …`.
    pub fn summary(&self) -> String {
        let graphs = self.snapshot();
        if graphs.is_empty() {
            return "-".into();
        }
        graphs
            .iter()
            .map(|c| {
                format!(
                    "{}: {}×{} {:.1} ms in {:.2} MB out {:.2} MB",
                    c.graph,
                    c.computes,
                    if c.failed > 0 { format!(" ({} failed)", c.failed) } else { String::new() },
                    c.time.as_secs_f64() * 1e3,
                    c.bytes_in as f64 / 1e6,
                    c.bytes_out as f64 / 1e6
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A backend error with its detail (wasmtime-wasi-nn's `Display` of `BackendAccess` drops it).
pub fn describe(e: &BackendError) -> String {
    match e {
        BackendError::BackendAccess(inner) => format!("{inner:#}"),
        other => other.to_string(),
    }
}

struct CountedGraph {
    name: Arc<str>,
    inner: Graph,
    stats: Arc<NnStats>,
}

impl BackendGraph for CountedGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let inner = self.inner.init_execution_context()?;
        let ctx: Box<dyn BackendExecutionContext> = Box::new(CountedContext {
            name: self.name.clone(),
            inner,
            stats: self.stats.clone(),
        });
        Ok(ctx.into())
    }
}

struct CountedContext {
    name: Arc<str>,
    inner: ExecutionContext,
    stats: Arc<NnStats>,
}

impl BackendExecutionContext for CountedContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        self.inner.set_input(id, tensor)
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        self.inner.get_output(id)
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let bytes_in = inputs.iter().flatten().map(|t| t.tensor.data.len() as u64).sum();
        let start = Instant::now();
        let result = BackendExecutionContext::compute(&mut *self.inner, inputs);
        let bytes_out = match &result {
            Ok(outputs) => outputs.iter().flatten().map(|t| t.tensor.data.len() as u64).sum(),
            Err(_) => 0,
        };
        self.stats.record(&self.name, start.elapsed(), bytes_in, bytes_out, result.is_ok());
        if let Err(e) = &result {
            tracing::warn!(graph = %self.name, error = %describe(e), "wasi-nn compute failed");
        }
        result
    }
}
