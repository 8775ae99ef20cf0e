//! The bridge between wasmtime-wasi-nn's backend traits and the execution-context convention of
//! the `nn-context` crate (inputs persist, `present<S>` carried into `past<S>`), which every
//! backend of ours shares: ONNX Runtime and OpenVINO here, tract in the pure-wasm provider.
//!
//! A backend implements [`nn_context::Runner`]; [`into_execution_context`] makes a wasi-nn
//! execution context of it.

use nn_context::{Context, Dtype, ErrorKind, Input, Runner};
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, Id, NamedTensor};
use wasmtime_wasi_nn::wit::{Tensor, TensorType};
use wasmtime_wasi_nn::ExecutionContext;

pub use nn_context::{GraphInfo, IoInfo};

pub fn dtype(ty: TensorType) -> Dtype {
    match ty {
        TensorType::Fp16 => Dtype::F16,
        TensorType::Fp32 => Dtype::F32,
        TensorType::Fp64 => Dtype::F64,
        TensorType::Bf16 => Dtype::Bf16,
        TensorType::U8 => Dtype::U8,
        TensorType::I32 => Dtype::I32,
        TensorType::I64 => Dtype::I64,
    }
}

pub fn tensor_type(ty: Dtype) -> TensorType {
    match ty {
        Dtype::F16 => TensorType::Fp16,
        Dtype::F32 => TensorType::Fp32,
        Dtype::F64 => TensorType::Fp64,
        Dtype::Bf16 => TensorType::Bf16,
        Dtype::U8 => TensorType::U8,
        Dtype::I32 => TensorType::I32,
        Dtype::I64 => TensorType::I64,
    }
}

/// A [`BackendError`] carrying a message (shown in the host log; wasmtime-wasi-nn reports it to
/// the guest as `runtime-error`).
pub fn backend_error(message: impl Into<String>) -> BackendError {
    BackendError::BackendAccess(wasmtime::Error::msg(message.into()))
}

fn from_convention(e: nn_context::Error) -> BackendError {
    match e.kind {
        ErrorKind::UnsupportedType => BackendError::UnsupportedTensorType(e.message),
        ErrorKind::InvalidArgument | ErrorKind::Runtime => backend_error(e.message),
    }
}

/// A wasi-nn execution context over `runner`, following the convention.
pub fn into_execution_context<R>(runner: R) -> ExecutionContext
where
    R: Runner + Send + Sync + 'static,
    R::Value: Send + Sync + 'static,
{
    let ctx: Box<dyn BackendExecutionContext> = Box::new(Adapter { ctx: Context::new(runner), last: Vec::new() });
    ctx.into()
}

struct Adapter<R: Runner> {
    ctx: Context<R>,
    /// Outputs of the last compute, for the witx-style `get_output`.
    last: Vec<NamedTensor>,
}

fn input<V>(t: NamedTensor) -> (String, Input<V>) {
    let tensor = nn_context::Tensor { dims: t.tensor.dimensions, ty: dtype(t.tensor.ty), data: t.tensor.data };
    (t.name, Input::Tensor(tensor))
}

impl<R> Adapter<R>
where
    R: Runner,
{
    fn outputs(&self, values: Vec<(String, R::Value)>) -> Result<Vec<NamedTensor>, BackendError> {
        values
            .into_iter()
            .map(|(name, value)| {
                let t = self.ctx.runner().read(&value).map_err(from_convention)?;
                Ok(NamedTensor { name, tensor: Tensor { dimensions: t.dims, ty: tensor_type(t.ty), data: t.data } })
            })
            .collect()
    }
}

impl<R> BackendExecutionContext for Adapter<R>
where
    R: Runner + Send + Sync,
    R::Value: Send + Sync,
{
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let name = match id {
            Id::Name(name) => name,
            Id::Index(i) => self
                .ctx
                .info()
                .inputs
                .get(i as usize)
                .map(|i| i.name.clone())
                .ok_or_else(|| backend_error(format!("input index {i} is out of range")))?,
        };
        self.ctx.store(vec![input(NamedTensor { name, tensor: tensor.clone() })]).map_err(from_convention)
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
                let values = self.ctx.compute(inputs.into_iter().map(input).collect()).map_err(from_convention)?;
                self.outputs(values).map(Some)
            }
            None => {
                let values = self.ctx.run().map_err(from_convention)?;
                self.last = self.outputs(values)?;
                Ok(None)
            }
        }
    }
}
