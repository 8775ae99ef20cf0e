//! The OpenVINO wasi-nn backend (cargo feature `openvino`): reads the same `.onnx` files as the
//! ONNX Runtime backend and follows the same execution-context convention (crate docs).
//!
//! wasmtime-wasi-nn's own OpenVINO backend names outputs "0", "1", …, keeps no state between
//! computes and panics on a data length that does not match the shape; this one uses the
//! graph's tensor names, validates every input and carries `present<S>` into `past<S>`.
//! The carried tensor is copied into a fresh input tensor: an infer request may reuse its output
//! buffers in the next inference.
//!
//! The libraries are opened at run time (openvino crate's `runtime-linking`): `pip install
//! openvino`, then either point `--openvino-lib` / `OPENVINO_LIB` at the wheel's
//! `openvino/libs/libopenvino_c.so.<ver>`, or let the openvino crate's finder look for an
//! unversioned `libopenvino_c.so` (OPENVINO_INSTALL_DIR, INTEL_OPENVINO_DIR, LD_LIBRARY_PATH).

use super::ort::Target;
use super::convention::{self, backend_error, GraphInfo, IoInfo};
use super::GraphLoader;
use nn_context::{Dtype, Error, Runner};
use anyhow::Context as _;
use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey, Shape, Tensor as OvTensor};
use std::path::Path;
use std::sync::{Arc, Mutex};
use wasmtime_wasi_nn::backend::{BackendError, BackendGraph};
use wasmtime_wasi_nn::{ExecutionContext, Graph};

/// What to tell a user whose OpenVINO libraries are missing.
const INSTALL_HINT: &str = "install them with `pip install openvino` (scripts/setup-python.sh does) and point \
OPENVINO_LIB or --openvino-lib at `<venv>/lib/python3.*/site-packages/openvino/libs/libopenvino_c.so.<version>`";

/// The OpenVINO C library: `explicit` (the `--openvino-lib` flag), else `OPENVINO_LIB`, else
/// `None` (the openvino crate's finder searches). An explicit path must exist.
pub fn find_openvino_library(explicit: Option<&Path>) -> anyhow::Result<Option<std::path::PathBuf>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("OPENVINO_LIB") {
            Some(p) if !p.is_empty() => p.into(),
            _ => return Ok(None),
        },
    };
    if path.is_dir() {
        anyhow::bail!("the OpenVINO library `{}` is a directory, not the library file: {INSTALL_HINT}", path.display());
    }
    if !path.is_file() {
        anyhow::bail!("the OpenVINO library `{}` does not exist: {INSTALL_HINT}", path.display());
    }
    Ok(Some(path))
}

/// Loads graphs into OpenVINO.
pub struct OpenvinoBackend {
    core: Mutex<Core>,
    target: Target,
}

impl OpenvinoBackend {
    /// Opens the OpenVINO libraries, from `library` (see [`find_openvino_library`]) or wherever the
    /// openvino crate's finder looks; `threads` caps the CPU plugin's inference threads (0: its
    /// default). The library is process-wide: the first backend's choice stays.
    pub fn new(target: Target, threads: usize, library: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(library) = library {
            openvino_sys::library::load_from(library)
                .map_err(|e| anyhow::anyhow!("cannot load OpenVINO from `{}` ({e}): {INSTALL_HINT}", library.display()))?;
        }
        let mut core = Core::new().map_err(|e| anyhow::anyhow!("cannot load OpenVINO ({e}): {INSTALL_HINT}"))?;
        if target == Target::Cpu && threads > 0 {
            core.set_property(&DeviceType::CPU, &RwPropertyKey::InferenceNumThreads, &threads.to_string())
                .map_err(|e| anyhow::anyhow!("setting OpenVINO's thread count: {e}"))?;
        }
        Ok(Self { core: Mutex::new(core), target })
    }
}

fn device(target: Target) -> DeviceType<'static> {
    match target {
        Target::Cpu => DeviceType::CPU,
        Target::Gpu => DeviceType::GPU,
    }
}

fn tensor_type(ty: ElementType) -> Option<Dtype> {
    Some(match ty {
        ElementType::F32 => Dtype::F32,
        ElementType::F16 => Dtype::F16,
        ElementType::I64 => Dtype::I64,
        ElementType::I32 => Dtype::I32,
        ElementType::U8 => Dtype::U8,
        _ => return None,
    })
}

fn element_type(ty: Dtype) -> ElementType {
    match ty {
        Dtype::F16 => ElementType::F16,
        Dtype::F32 => ElementType::F32,
        Dtype::F64 => ElementType::F64,
        Dtype::Bf16 => ElementType::Bf16,
        Dtype::U8 => ElementType::U8,
        Dtype::I32 => ElementType::I32,
        Dtype::I64 => ElementType::I64,
    }
}

fn io_info(node: openvino::Node, what: &str) -> anyhow::Result<IoInfo> {
    let name = node.get_name().map_err(|e| anyhow::anyhow!("{what} name: {e}"))?;
    let ov_type = node.get_element_type().map_err(|e| anyhow::anyhow!("{what} `{name}` type: {e}"))?;
    let ty = tensor_type(ov_type).with_context(|| format!("{what} `{name}` is {ov_type}; this host supports f32, f16, i64, i32 and u8"))?;
    let shape = node.get_partial_shape().map_err(|e| anyhow::anyhow!("{what} `{name}` shape: {e}"))?;
    let dims = shape
        .get_dimensions()
        .iter()
        .map(|d| if d.is_dynamic() { -1 } else { d.get_min() })
        .collect();
    Ok(IoInfo { name, ty, dims })
}

impl GraphLoader for OpenvinoBackend {
    fn load_file(&self, path: &Path) -> anyhow::Result<(Graph, GraphInfo)> {
        let path = path.to_str().context("the graph path is not UTF-8")?;
        let mut core = self.core.lock().unwrap_or_else(|e| e.into_inner());
        let model = core.read_model_from_file(path, "").map_err(|e| anyhow::anyhow!("OpenVINO cannot read it: {e}"))?;
        let compiled = core.compile_model(&model, device(self.target)).map_err(|e| anyhow::anyhow!("OpenVINO cannot compile it: {e}"))?;
        let ov = |e: openvino::InferenceError| anyhow::anyhow!("{e}");
        let inputs = (0..compiled.get_input_size().map_err(ov)?)
            .map(|i| io_info(compiled.get_input_by_index(i).map_err(ov)?, "input"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outputs = (0..compiled.get_output_size().map_err(ov)?)
            .map(|i| io_info(compiled.get_output_by_index(i).map_err(ov)?, "output"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let info = GraphInfo::new(inputs, outputs);
        let graph: Box<dyn BackendGraph> = Box::new(OvGraph(Arc::new(Shared { compiled: Mutex::new(compiled), info: info.clone() })));
        Ok((graph.into(), info))
    }
}

struct Shared {
    compiled: Mutex<CompiledModel>,
    info: GraphInfo,
}

struct OvGraph(Arc<Shared>);

impl BackendGraph for OvGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let request = self
            .0
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .create_infer_request()
            .map_err(|e| backend_error(format!("OpenVINO: {e}")))?;
        Ok(convention::into_execution_context(OvRunner { graph: self.0.clone(), request }))
    }
}

/// The OpenVINO side of one execution context (the convention is `nn_context::Context`'s): the
/// graph's infer request, given every stored input at each run.
struct OvRunner {
    graph: Arc<Shared>,
    request: InferRequest,
}

fn ov_error(e: openvino::InferenceError) -> Error {
    Error::runtime(format!("OpenVINO: {e}"))
}

fn new_tensor(ty: ElementType, dims: &[i64], data: &[u8]) -> Result<OvTensor, Error> {
    let shape = Shape::new(dims).map_err(ov_error)?;
    let mut tensor = OvTensor::new(ty, &shape).map_err(ov_error)?;
    if !data.is_empty() {
        let buffer = tensor.get_raw_data_mut().map_err(ov_error)?;
        if buffer.len() != data.len() {
            return Err(Error::runtime("OpenVINO allocated a tensor of an unexpected size"));
        }
        buffer.copy_from_slice(data);
    }
    Ok(tensor)
}

fn dims_of(tensor: &OvTensor) -> Result<Vec<i64>, Error> {
    Ok(tensor.get_shape().map_err(ov_error)?.get_dimensions().to_vec())
}

/// A tensor stored in a context.
pub struct OvValue(OvTensor);

// SAFETY: OpenVINO tensors may move between threads (the crate makes them `Send`); a context's
// values are only touched through `&mut` (one thread at a time), never shared.
unsafe impl Sync for OvValue {}

impl Runner for OvRunner {
    type Value = OvValue;

    fn info(&self) -> &GraphInfo {
        &self.graph.info
    }

    fn stage(&mut self, _decl: &IoInfo, t: nn_context::Tensor) -> Result<OvValue, Error> {
        let dims: Vec<i64> = t.dims.iter().map(|&d| i64::from(d)).collect();
        new_tensor(element_type(t.ty), &dims, &t.data).map(OvValue)
    }

    fn describe(&self, OvValue(value): &OvValue) -> (Dtype, Vec<u32>) {
        let ty = value.get_element_type().ok().and_then(tensor_type).unwrap_or(Dtype::F64);
        let dims = dims_of(value).unwrap_or_default();
        (ty, dims.iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect())
    }

    fn run(&mut self, inputs: &[&OvValue]) -> Result<Vec<OvValue>, Error> {
        let info = &self.graph.info;
        for (decl, OvValue(tensor)) in info.inputs.iter().zip(inputs) {
            self.request.set_tensor(&decl.name, tensor).map_err(ov_error)?;
        }
        self.request.infer().map_err(ov_error)?;
        // Copied out: the infer request reuses its output buffers in the next inference.
        info.outputs
            .iter()
            .map(|decl| {
                let output = self.request.get_tensor(&decl.name).map_err(ov_error)?;
                let ty = output.get_element_type().map_err(ov_error)?;
                new_tensor(ty, &dims_of(&output)?, output.get_raw_data().map_err(ov_error)?).map(OvValue)
            })
            .collect()
    }

    fn read(&self, OvValue(value): &OvValue) -> Result<nn_context::Tensor, Error> {
        let ov_ty = value.get_element_type().map_err(ov_error)?;
        let ty = tensor_type(ov_ty).ok_or_else(|| Error::unsupported(format!("an output is {ov_ty}")))?;
        let dims = dims_of(value)?
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| Error::runtime(format!("output dimension {d} does not fit wasi-nn"))))
            .collect::<Result<_, _>>()?;
        Ok(nn_context::Tensor { dims, ty, data: value.get_raw_data().map_err(ov_error)?.to_vec() })
    }
}
