//! The ONNX Runtime wasi-nn backend ([`OrtBackend`]).
//!
//! Differences from wasmtime-wasi-nn's own `onnx` backend, which this replaces:
//! - dtypes f32, f16, i64, i32 and u8 in both directions, each output with its own dtype and
//!   shape; a bad request (dtype, rank, shape, data length, unknown or missing input) is a wasi-nn
//!   error, never a panic;
//! - the execution-context convention of the crate docs (inputs persist, `present<S>` is carried
//!   over as `past<S>` without leaving ONNX Runtime);
//! - no lock per graph: ONNX Runtime's `Run` may be called from several threads on one session,
//!   so [`OrtGraph::run`] calls it through the C API on a shared `&Session` (ort rc.10's safe
//!   `Session::run` wants `&mut self`);
//! - guest tensors are handed to ONNX Runtime without a copy (the `Vec<u8>` wasmtime lifted from
//!   guest memory becomes the tensor's buffer when it is aligned, which the system allocator
//!   gives in practice); outputs are copied once, into the `Vec<u8>` the wasi-nn API needs.

use super::tensor::{self, backend_error, GraphInfo, IoInfo};
use super::GraphLoader;
use anyhow::{bail, Context as _};
use ort::execution_providers::{
    CPUExecutionProvider, CUDAExecutionProvider, ExecutionProvider, ExecutionProviderDispatch,
    TensorRTExecutionProvider,
};
use ort::memory::MemoryInfo;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::tensor::{PrimitiveTensorElementType, Shape, TensorElementType};
use ort::value::{DynValue, DynValueTypeMarker, Tensor as OrtTensor, TensorRefMut, ValueRefMut, ValueType};
use ort::AsPointer;
use std::ffi::{c_char, CString};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, Tensor, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph};

/// Where graphs run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// ONNX Runtime's CPU provider (OpenVINO: the CPU plugin).
    #[default]
    Cpu,
    /// CUDA (with TensorRT first when available) if the ONNX Runtime library has it; start-up
    /// fails otherwise (OpenVINO: the GPU plugin).
    Gpu,
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OptLevel {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

/// How [`OrtBackend`] builds its sessions.
#[derive(Clone, Debug)]
pub struct OrtOptions {
    /// Threads of the intra-op pool shared by all sessions (0: ONNX Runtime's default, one per core).
    pub threads: usize,
    pub opt_level: OptLevel,
    pub target: Target,
    /// ONNX Runtime's CPU memory arena. Off by default: each session's arena keeps its largest
    /// run's activations (rounded up to powers of two) for the life of the server, once per
    /// session; without it, freed activations go back to malloc. Measured with base-int8, a
    /// 184 s beam-5 request and two jfk requests at once: peak RSS 703 → 515 MiB, 648 → 413 MiB
    /// afterwards, same speed.
    pub arena: bool,
    /// Session configuration entries (`session.*` keys of ONNX Runtime's
    /// `onnxruntime_session_options_config_keys.h`), applied to every session.
    pub config: Vec<(String, String)>,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            opt_level: OptLevel::All,
            target: Target::Cpu,
            arena: false,
            config: Vec::new(),
        }
    }
}

/// What to tell a user whose ONNX Runtime library is missing.
const INSTALL_HINT: &str = "install it with `pip install onnxruntime==1.22.1` (scripts/setup-python.sh does) \
and point ORT_DYLIB_PATH or --ort-lib at `<venv>/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.1.22.1`";

/// Finds the ONNX Runtime shared library: `explicit` (the `--ort-lib` flag), else `ORT_DYLIB_PATH`.
pub fn find_ort_library(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => bail!("the ONNX Runtime library is not configured: {INSTALL_HINT}"),
        },
    };
    if path.is_dir() {
        bail!("the ONNX Runtime library `{}` is a directory, not the library file: {INSTALL_HINT}", path.display());
    }
    if !path.is_file() {
        bail!("the ONNX Runtime library `{}` does not exist: {INSTALL_HINT}", path.display());
    }
    Ok(path)
}

/// The ONNX Runtime backend: a wasi-nn [`BackendInner`] and the loader the model registry uses.
///
/// ONNX Runtime's environment is process-wide: the first `OrtBackend` fixes the library and the
/// thread pool; later ones in the same process share them.
pub struct OrtBackend {
    options: OrtOptions,
    providers: Vec<ExecutionProviderDispatch>,
}

impl OrtBackend {
    /// Loads ONNX Runtime from `library` (see [`find_ort_library`]) and checks that `options.target`
    /// is available in it.
    pub fn new(library: &Path, options: OrtOptions) -> anyhow::Result<Self> {
        init_environment(library, &options)?;
        let providers = providers(options.target, options.arena)?;
        Ok(Self { options, providers })
    }

    pub fn options(&self) -> &OrtOptions {
        &self.options
    }

    fn builder(&self) -> ort::Result<ort::session::builder::SessionBuilder> {
        let level = match self.options.opt_level {
            OptLevel::Disable => GraphOptimizationLevel::Disable,
            OptLevel::Basic => GraphOptimizationLevel::Level1,
            OptLevel::Extended => GraphOptimizationLevel::Level2,
            OptLevel::All => GraphOptimizationLevel::Level3,
        };
        let mut builder = Session::builder()?
            .with_execution_providers(&self.providers)?
            .with_optimization_level(level)?;
        for (key, value) in &self.options.config {
            builder = builder.with_config_entry(key, value)?;
        }
        Ok(builder)
    }

    /// Loads one `.onnx` file (external data files next to it are found too).
    pub fn load_graph_file(&self, path: &Path) -> anyhow::Result<(Graph, GraphInfo)> {
        let session = self
            .builder()
            .and_then(|b| b.commit_from_file(path))
            .map_err(|e| anyhow::anyhow!("ONNX Runtime cannot load it: {e}"))?;
        let graph = OrtGraph::new(session)?;
        let info = graph.info.clone();
        Ok((graph.into_graph(), info))
    }

    /// Loads a graph from the bytes of an `.onnx` file.
    pub fn load_graph_bytes(&self, bytes: &[u8]) -> anyhow::Result<(Graph, GraphInfo)> {
        let session = self
            .builder()
            .and_then(|b| b.commit_from_memory(bytes))
            .map_err(|e| anyhow::anyhow!("ONNX Runtime cannot load the graph: {e}"))?;
        let graph = OrtGraph::new(session)?;
        let info = graph.info.clone();
        Ok((graph.into_graph(), info))
    }
}

impl GraphLoader for OrtBackend {
    fn load_file(&self, path: &Path) -> anyhow::Result<(Graph, GraphInfo)> {
        self.load_graph_file(path)
    }
}

impl BackendInner for OrtBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    /// `load` from guest bytes. The server does not register any backend for this (graphs come
    /// from the registry only), but other embedders may.
    fn load(&mut self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, BackendError> {
        let [bytes] = builders else {
            return Err(BackendError::InvalidNumberOfBuilders(1, builders.len()));
        };
        let wanted = match target {
            ExecutionTarget::Cpu => Target::Cpu,
            ExecutionTarget::Gpu => Target::Gpu,
            ExecutionTarget::Tpu => return Err(backend_error("the ONNX Runtime backend has no TPU target")),
        };
        if wanted != self.options.target {
            return Err(backend_error(format!(
                "this host runs graphs on {:?}; {target:?} was asked for",
                self.options.target
            )));
        }
        self.load_graph_bytes(bytes)
            .map(|(graph, _)| graph)
            .map_err(|e| backend_error(format!("{e:#}")))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        Some(self)
    }
}

impl BackendFromDir for OrtBackend {
    /// Loads `<dir>/model.onnx` (wasmtime's `nn-graph` layout).
    fn load_from_dir(&mut self, dir: &Path, _target: ExecutionTarget) -> Result<Graph, BackendError> {
        self.load_graph_file(&dir.join("model.onnx"))
            .map(|(graph, _)| graph)
            .map_err(|e| backend_error(format!("{e:#}")))
    }
}

fn init_environment(library: &Path, options: &OrtOptions) -> anyhow::Result<()> {
    let library = library.to_string_lossy().into_owned();
    // ort panics when the library cannot be opened or is too old; turn that into an error.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| -> ort::Result<bool> {
        // `init_from` first: it fixes the library path, and anything else may already load it.
        let environment = ort::init_from(library.clone()).with_name("whisper-host");
        let mut pool = ort::environment::GlobalThreadPoolOptions::default();
        if options.threads > 0 {
            pool = pool.with_intra_threads(options.threads)?;
        }
        environment.with_global_thread_pool(pool).commit()
    });
    std::panic::set_hook(previous_hook);
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("cannot start ONNX Runtime from `{library}`: {e}"),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            bail!("cannot load the ONNX Runtime library `{library}`: {message}; {INSTALL_HINT}")
        }
    }
}

fn providers(target: Target, arena: bool) -> anyhow::Result<Vec<ExecutionProviderDispatch>> {
    match target {
        Target::Cpu => Ok(vec![CPUExecutionProvider::default().with_arena_allocator(arena).build().error_on_failure()]),
        Target::Gpu => {
            let mut list = Vec::new();
            if TensorRTExecutionProvider::default().is_available().unwrap_or(false) {
                list.push(TensorRTExecutionProvider::default().build());
            }
            if CUDAExecutionProvider::default().is_available().unwrap_or(false) {
                list.push(CUDAExecutionProvider::default().build().error_on_failure());
            }
            if list.is_empty() {
                bail!(
                    "--target gpu: this ONNX Runtime library has no CUDA or TensorRT execution provider \
                     (it has {}); install `onnxruntime-gpu` and point ORT_DYLIB_PATH/--ort-lib at its \
                     libonnxruntime.so, or use --target cpu",
                    available_providers().join(", ")
                );
            }
            Ok(list)
        }
    }
}

/// The execution providers compiled into the loaded ONNX Runtime library.
pub fn available_providers() -> Vec<String> {
    let api = ort::api();
    let mut names: *mut *mut c_char = ptr::null_mut();
    let mut count = 0;
    // SAFETY: plain C API calls; the list is released below.
    unsafe {
        if ort::error::status_to_result((api.GetAvailableProviders)(&mut names, &mut count)).is_err() || names.is_null() {
            return Vec::new();
        }
        let list = (0..count as usize)
            .map(|i| std::ffi::CStr::from_ptr(*names.add(i)).to_string_lossy().into_owned())
            .collect();
        let _ = (api.ReleaseAvailableProviders)(names, count);
        list
    }
}

fn tensor_type(ty: TensorElementType) -> Option<TensorType> {
    Some(match ty {
        TensorElementType::Float32 => TensorType::Fp32,
        TensorElementType::Float16 => TensorType::Fp16,
        TensorElementType::Int64 => TensorType::I64,
        TensorElementType::Int32 => TensorType::I32,
        TensorElementType::Uint8 => TensorType::U8,
        _ => return None,
    })
}

fn io_info(name: &str, vt: &ValueType, what: &str) -> anyhow::Result<IoInfo> {
    match vt {
        ValueType::Tensor { ty, shape, .. } => {
            let ty = tensor_type(*ty)
                .with_context(|| format!("{what} `{name}` is a {ty} tensor; this host supports f32, f16, i64, i32 and u8"))?;
            Ok(IoInfo { name: name.to_string(), ty, dims: shape.to_vec() })
        }
        other => bail!("{what} `{name}` is a {other}, not a tensor"),
    }
}

/// One loaded ONNX graph, shared (through [`Graph`]'s `Arc`) by every request.
struct OrtGraph {
    session: Session,
    info: GraphInfo,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
}

impl OrtGraph {
    fn new(session: Session) -> anyhow::Result<Self> {
        let inputs = session
            .inputs
            .iter()
            .map(|i| io_info(&i.name, &i.input_type, "input"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outputs = session
            .outputs
            .iter()
            .map(|o| io_info(&o.name, &o.output_type, "output"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cstrings = |list: &[IoInfo]| -> anyhow::Result<Vec<CString>> {
            list.iter().map(|i| CString::new(i.name.as_str()).context("a tensor name contains NUL")).collect()
        };
        Ok(Self {
            input_names: cstrings(&inputs)?,
            output_names: cstrings(&outputs)?,
            info: GraphInfo::new(inputs, outputs),
            session,
        })
    }

    /// Runs the session on one value per graph input (in graph order) and returns one value per
    /// graph output.
    ///
    /// ONNX Runtime documents `Run` as safe to call concurrently on one session; ort rc.10 only
    /// offers it through `&mut Session`, so this calls the C function itself.
    fn run(&self, inputs: &[&DynValue]) -> Result<Vec<DynValue>, BackendError> {
        debug_assert_eq!(inputs.len(), self.input_names.len());
        let input_names: Vec<*const c_char> = self.input_names.iter().map(|n| n.as_ptr()).collect();
        let output_names: Vec<*const c_char> = self.output_names.iter().map(|n| n.as_ptr()).collect();
        let input_values: Vec<*const ort::sys::OrtValue> = inputs.iter().map(|v| v.ptr()).collect();
        let mut outputs: Vec<*mut ort::sys::OrtValue> = vec![ptr::null_mut(); output_names.len()];
        let inner = self.session.inner();
        // SAFETY: all pointers are valid for the duration of the call: the names are owned by
        // `self`, the input values by the caller, the session by `inner`; `outputs` has room for
        // one value per output name, and ONNX Runtime allocates them.
        let status = unsafe {
            (ort::api().Run)(
                inner.ptr().cast_mut(),
                ptr::null(),
                input_names.as_ptr(),
                input_values.as_ptr(),
                input_values.len(),
                output_names.as_ptr(),
                output_names.len(),
                outputs.as_mut_ptr(),
            )
        };
        // SAFETY: `status` comes straight from the call above.
        let result = unsafe { ort::error::status_to_result(status) };
        // Take ownership of whatever was allocated, even on error, so nothing leaks.
        let values: Vec<Option<DynValue>> = outputs
            .into_iter()
            // SAFETY: a non-null output is a fresh OrtValue that we now own.
            .map(|p| NonNull::new(p).map(|p| unsafe { DynValue::from_ptr(p, Some(inner.clone())) }))
            .collect();
        result.map_err(|e| backend_error(format!("ONNX Runtime failed: {e}")))?;
        values
            .into_iter()
            .map(|v| v.ok_or_else(|| backend_error("ONNX Runtime returned no value for an output")))
            .collect()
    }
}

impl OrtGraph {
    fn into_graph(self) -> Graph {
        let graph: Box<dyn BackendGraph> = Box::new(SharedGraph(Arc::new(self)));
        graph.into()
    }
}

/// [`OrtGraph`] behind an `Arc`, so execution contexts can keep it alive.
struct SharedGraph(Arc<OrtGraph>);

impl BackendGraph for SharedGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let inputs = (0..self.0.info.inputs.len()).map(|_| None).collect();
        let ctx: Box<dyn BackendExecutionContext> = Box::new(OrtContext { graph: self.0.clone(), inputs, last: Vec::new() });
        Ok(ctx.into())
    }
}

/// A value stored as an input of an execution context.
enum Stored {
    /// A tensor the guest sent, viewed in place: `value` points into `_bytes`.
    Borrowed {
        value: ValueRefMut<'static, DynValueTypeMarker>,
        _bytes: Vec<u8>,
    },
    /// A value owned by ONNX Runtime: a copied guest tensor, or a carried `present` output.
    Owned(DynValue),
}

impl Stored {
    fn value(&self) -> &DynValue {
        match self {
            Stored::Borrowed { value, .. } => value,
            Stored::Owned(value) => value,
        }
    }

    /// Wraps guest bytes (already checked against `dims`) as an ONNX Runtime tensor.
    fn from_guest(ty: TensorType, dims: Vec<i64>, bytes: Vec<u8>) -> Result<Self, BackendError> {
        match ty {
            TensorType::Fp32 => Self::typed::<f32>(dims, bytes),
            TensorType::Fp16 => Self::typed::<half::f16>(dims, bytes),
            TensorType::I64 => Self::typed::<i64>(dims, bytes),
            TensorType::I32 => Self::typed::<i32>(dims, bytes),
            TensorType::U8 => Self::typed::<u8>(dims, bytes),
            TensorType::Fp64 | TensorType::Bf16 => Err(BackendError::UnsupportedTensorType(tensor::dtype_name(ty).into())),
        }
    }

    fn typed<T: PrimitiveTensorElementType + Debug + Copy + 'static>(dims: Vec<i64>, mut bytes: Vec<u8>) -> Result<Self, BackendError> {
        let ort_error = |e: ort::Error| backend_error(format!("cannot create an ONNX Runtime tensor: {e}"));
        let size = std::mem::size_of::<T>();
        if !bytes.is_empty() && bytes.as_ptr().align_offset(std::mem::align_of::<T>()) == 0 {
            // SAFETY: the buffer holds `product(dims)` properly aligned elements of `T` (checked
            // by `check_input`) and lives in `_bytes` as long as the view; the view is declared
            // first so it is dropped first.
            let value = unsafe { TensorRefMut::<T>::from_raw(MemoryInfo::default(), bytes.as_mut_ptr().cast(), Shape::new(dims)) }
                .map_err(ort_error)?
                .into_dyn();
            return Ok(Stored::Borrowed { value, _bytes: bytes });
        }
        let count = bytes.len() / size;
        if count == 0 {
            // A zero-sized tensor (e.g. an empty `past` that starts a sequence): ort refuses
            // dimensions of 0 for tensors over raw data, but an allocator-backed one is fine.
            let value = OrtTensor::<T>::new(&ort::memory::Allocator::default(), dims).map_err(ort_error)?.into_dyn();
            return Ok(Stored::Owned(value));
        }
        // Unaligned: copy into a `Vec<T>`.
        let mut elements: Vec<T> = Vec::with_capacity(count);
        // SAFETY: `elements` has room for `count` elements = `bytes.len()` bytes, and every bit
        // pattern is a valid value of these primitive types.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), elements.as_mut_ptr().cast::<u8>(), count * size);
            elements.set_len(count);
        }
        let value = OrtTensor::from_array((dims, elements)).map_err(ort_error)?.into_dyn();
        Ok(Stored::Owned(value))
    }
}

/// Copies an output value into a wasi-nn tensor (its own dtype and shape).
fn to_wasi_tensor(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    fn bytes_of<T: PrimitiveTensorElementType>(value: &DynValue) -> Result<(Vec<u32>, Vec<u8>), BackendError> {
        let (shape, data) = value
            .try_extract_tensor::<T>()
            .map_err(|e| backend_error(format!("cannot read an output: {e}")))?;
        let dims = shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| backend_error(format!("output dimension {d} does not fit wasi-nn"))))
            .collect::<Result<_, _>>()?;
        // SAFETY: reinterpreting initialised primitive values as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) };
        Ok((dims, bytes.to_vec()))
    }
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(backend_error(format!("output `{name}` is not a tensor")));
    };
    let (dims, data, ty) = match ty {
        TensorElementType::Float32 => bytes_of::<f32>(value).map(|(d, b)| (d, b, TensorType::Fp32))?,
        TensorElementType::Float16 => bytes_of::<half::f16>(value).map(|(d, b)| (d, b, TensorType::Fp16))?,
        TensorElementType::Int64 => bytes_of::<i64>(value).map(|(d, b)| (d, b, TensorType::I64))?,
        TensorElementType::Int32 => bytes_of::<i32>(value).map(|(d, b)| (d, b, TensorType::I32))?,
        TensorElementType::Uint8 => bytes_of::<u8>(value).map(|(d, b)| (d, b, TensorType::U8))?,
        other => return Err(BackendError::UnsupportedTensorType(format!("output `{name}` is {other}"))),
    };
    Ok(Tensor { dimensions: dims, ty, data })
}

/// An execution context: the stored inputs (see the crate docs for the convention).
struct OrtContext {
    graph: Arc<OrtGraph>,
    /// One slot per graph input, in graph order.
    inputs: Vec<Option<Stored>>,
    /// Outputs of the last compute, for the witx-style `get_output`.
    last: Vec<NamedTensor>,
}

// SAFETY: the ORT values are only touched through `&mut self` (one thread at a time); ONNX
// Runtime values and sessions may move between threads.
unsafe impl Send for OrtContext {}
unsafe impl Sync for OrtContext {}

impl OrtContext {
    /// Checks every input first, then stores them all (so a bad request changes nothing).
    fn store(&mut self, inputs: Vec<NamedTensor>) -> Result<(), BackendError> {
        let info = &self.graph.info;
        let mut checked = Vec::with_capacity(inputs.len());
        for NamedTensor { name, tensor } in inputs {
            let index = info.input_index(&name)?;
            if checked.iter().any(|(i, _, _)| *i == index) {
                return Err(backend_error(format!("input `{name}` is given twice")));
            }
            let dims = tensor::check_input(&info.inputs[index], &tensor.dimensions, tensor.ty, tensor.data.len())?;
            checked.push((index, dims, tensor));
        }
        for (index, dims, tensor) in checked {
            self.inputs[index] = Some(Stored::from_guest(tensor.ty, dims, tensor.data)?);
        }
        Ok(())
    }

    /// Runs the graph on the stored inputs; keeps carried outputs, returns the others.
    fn run(&mut self) -> Result<Vec<NamedTensor>, BackendError> {
        let graph = self.graph.clone();
        let info = &graph.info;
        let values = self
            .inputs
            .iter()
            .zip(&info.inputs)
            .map(|(slot, decl)| {
                slot.as_ref().map(Stored::value).ok_or_else(|| {
                    backend_error(format!(
                        "missing input `{}` ({decl}): it was never given to this execution context",
                        decl.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph.run(&values)?;
        let mut returned = Vec::with_capacity(outputs.len());
        let mut carried = Vec::new();
        for (index, value) in outputs.into_iter().enumerate() {
            if let Some(&(_, input)) = info.carried.iter().find(|&&(o, _)| o == index) {
                carried.push((input, value));
            } else {
                let name = info.outputs[index].name.clone();
                let tensor = to_wasi_tensor(&name, &value)?;
                returned.push(NamedTensor { name, tensor });
            }
        }
        for (input, value) in carried {
            self.inputs[input] = Some(Stored::Owned(value));
        }
        Ok(returned)
    }
}

impl BackendExecutionContext for OrtContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = match id {
            Id::Name(name) => name,
            Id::Index(i) => self
                .graph
                .info
                .inputs
                .get(i as usize)
                .map(|i| i.name.clone())
                .ok_or_else(|| backend_error(format!("input index {i} is out of range")))?,
        };
        self.store(vec![NamedTensor { name, tensor: tensor.clone() }])
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let found = match &id {
            Id::Name(name) => self.last.iter().find(|t| &t.name == name),
            Id::Index(i) => self.last.get(*i as usize),
        };
        found
            .map(|t| t.tensor.clone())
            .ok_or_else(|| backend_error(format!("no output {id:?}; has `compute` been called?")))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            Some(inputs) => {
                self.store(inputs)?;
                self.run().map(Some)
            }
            None => {
                self.last = self.run()?;
                Ok(None)
            }
        }
    }
}
