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
//!   `Session::run` wants `&mut self`); only the graphs named in [`OrtOptions::serial`] (by
//!   default `encoder`) run one at a time, to bound their activation memory;
//! - guest tensors are handed to ONNX Runtime without a copy (the `Vec<u8>` wasmtime lifted from
//!   guest memory becomes the tensor's buffer when it is aligned, which the system allocator
//!   gives in practice); outputs are copied once, into the `Vec<u8>` the wasi-nn API needs.

use super::convention::{self, backend_error, GraphInfo, IoInfo};
use super::GraphLoader;
use nn_context::{Dtype, Error, Runner};
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
use wasmtime_wasi_nn::backend::{BackendError, BackendFromDir, BackendGraph, BackendInner};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding};
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
    /// Graph files (by name without `.onnx`, e.g. `encoder`) whose runs take turns: one run of
    /// such a graph at a time, across all requests. For a graph whose run allocates far more
    /// than its inputs and outputs (an encoder over 30 s: ~70 MB of activations), this bounds
    /// memory to one run's worth however many requests are in flight, at no cost in throughput
    /// while its runs already fill the shared thread pool.
    pub serial: Vec<String>,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            opt_level: OptLevel::All,
            target: Target::Cpu,
            arena: false,
            config: Vec::new(),
            serial: vec!["encoder".into()],
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
        let mut graph = OrtGraph::new(session)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy());
        if stem.is_some_and(|stem| self.options.serial.iter().any(|s| *s == stem)) {
            graph.turns = Some(std::sync::Mutex::new(()));
        }
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

fn tensor_type(ty: TensorElementType) -> Option<Dtype> {
    Some(match ty {
        TensorElementType::Float32 => Dtype::F32,
        TensorElementType::Float16 => Dtype::F16,
        TensorElementType::Int64 => Dtype::I64,
        TensorElementType::Int32 => Dtype::I32,
        TensorElementType::Uint8 => Dtype::U8,
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
    /// Held through each run when this graph's runs take turns ([`OrtOptions::serial`]).
    turns: Option<std::sync::Mutex<()>>,
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
            turns: None,
        })
    }

    /// Runs the session on one value per graph input (in graph order) and returns one value per
    /// graph output.
    ///
    /// ONNX Runtime documents `Run` as safe to call concurrently on one session; ort rc.10 only
    /// offers it through `&mut Session`, so this calls the C function itself.
    fn run(&self, inputs: &[&DynValue]) -> Result<Vec<DynValue>, Error> {
        debug_assert_eq!(inputs.len(), self.input_names.len());
        let input_names: Vec<*const c_char> = self.input_names.iter().map(|n| n.as_ptr()).collect();
        let output_names: Vec<*const c_char> = self.output_names.iter().map(|n| n.as_ptr()).collect();
        let input_values: Vec<*const ort::sys::OrtValue> = inputs.iter().map(|v| v.ptr()).collect();
        let mut outputs: Vec<*mut ort::sys::OrtValue> = vec![ptr::null_mut(); output_names.len()];
        let inner = self.session.inner();
        // A poisoned lock only means another run panicked; the session itself is still usable.
        let _turn = self.turns.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
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
        result.map_err(|e| Error::runtime(format!("ONNX Runtime failed: {e}")))?;
        values
            .into_iter()
            .map(|v| v.ok_or_else(|| Error::runtime("ONNX Runtime returned no value for an output")))
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
        Ok(convention::into_execution_context(OrtRunner(self.0.clone())))
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
    fn from_guest(ty: Dtype, dims: Vec<i64>, bytes: Vec<u8>) -> Result<Self, Error> {
        match ty {
            Dtype::F32 => Self::typed::<f32>(dims, bytes),
            Dtype::F16 => Self::typed::<half::f16>(dims, bytes),
            Dtype::I64 => Self::typed::<i64>(dims, bytes),
            Dtype::I32 => Self::typed::<i32>(dims, bytes),
            Dtype::U8 => Self::typed::<u8>(dims, bytes),
            Dtype::F64 | Dtype::Bf16 => Err(Error::unsupported(nn_context::dtype_name(ty))),
        }
    }

    fn typed<T: PrimitiveTensorElementType + Debug + Copy + 'static>(dims: Vec<i64>, mut bytes: Vec<u8>) -> Result<Self, Error> {
        let ort_error = |e: ort::Error| Error::runtime(format!("cannot create an ONNX Runtime tensor: {e}"));
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

/// The ONNX Runtime side of one execution context (the convention is `nn_context::Context`'s).
struct OrtRunner(Arc<OrtGraph>);

// SAFETY: ONNX Runtime values and sessions may move between threads; a context's values are only
// touched through `&mut` (one thread at a time), and `Run` is thread-safe on a shared session.
unsafe impl Send for OrtRunner {}
unsafe impl Sync for OrtRunner {}
unsafe impl Send for Stored {}
unsafe impl Sync for Stored {}

impl Runner for OrtRunner {
    type Value = Stored;

    fn info(&self) -> &GraphInfo {
        &self.0.info
    }

    fn stage(&mut self, _decl: &IoInfo, t: nn_context::Tensor) -> Result<Stored, Error> {
        Stored::from_guest(t.ty, t.dims.iter().map(|&d| i64::from(d)).collect(), t.data)
    }

    fn describe(&self, value: &Stored) -> (Dtype, Vec<u32>) {
        match value.value().dtype() {
            ValueType::Tensor { ty, shape, .. } => (
                tensor_type(*ty).unwrap_or(Dtype::F64),
                shape.iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect(),
            ),
            _ => (Dtype::F64, Vec::new()),
        }
    }

    fn run(&mut self, inputs: &[&Stored]) -> Result<Vec<Stored>, Error> {
        let values: Vec<&DynValue> = inputs.iter().map(|s| s.value()).collect();
        Ok(self.0.run(&values)?.into_iter().map(Stored::Owned).collect())
    }

    fn read(&self, value: &Stored) -> Result<nn_context::Tensor, Error> {
        to_tensor(value.value())
    }
}

/// Copies a value into a wasi-nn tensor (its own dtype and shape).
fn to_tensor(value: &DynValue) -> Result<nn_context::Tensor, Error> {
    fn bytes_of<T: PrimitiveTensorElementType>(value: &DynValue) -> Result<(Vec<u32>, Vec<u8>), Error> {
        let (shape, data) = value
            .try_extract_tensor::<T>()
            .map_err(|e| Error::runtime(format!("cannot read an output: {e}")))?;
        let dims = shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| Error::runtime(format!("output dimension {d} does not fit wasi-nn"))))
            .collect::<Result<_, _>>()?;
        // SAFETY: reinterpreting initialised primitive values as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) };
        Ok((dims, bytes.to_vec()))
    }
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(Error::runtime("an output is not a tensor"));
    };
    let ty = tensor_type(*ty).ok_or_else(|| Error::unsupported(format!("an output is {ty}")))?;
    let (dims, data) = match ty {
        Dtype::F32 => bytes_of::<f32>(value)?,
        Dtype::F16 => bytes_of::<half::f16>(value)?,
        Dtype::I64 => bytes_of::<i64>(value)?,
        Dtype::I32 => bytes_of::<i32>(value)?,
        Dtype::U8 => bytes_of::<u8>(value)?,
        Dtype::F64 | Dtype::Bf16 => unreachable!("tensor_type maps no ONNX type to these"),
    };
    Ok(nn_context::Tensor { dims, ty, data })
}
