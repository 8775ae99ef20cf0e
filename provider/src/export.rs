//! The component's exports: wasi:nn's four interfaces over [`crate::registry`] and
//! [`nn_context::Context`], and wizer's init function.
//!
//! A tensor resource is either bytes the guest sent (checked only when used: the constructor
//! cannot fail) or a tract value a `compute` returned; passing the latter back into a `compute`
//! (the encoder's cross K/V into the decoder) moves no data, and its bytes are copied into the
//! guest only if it calls `data`.

use crate::engine::{self, Pins, TractGraph, TractRunner};
use crate::init::REGISTRY;
use nn_context::{Context, Dtype, ErrorKind, Input};
use std::cell::RefCell;
use std::sync::Arc;
use tract_onnx::prelude::TValue;

wit_bindgen::generate!({
    path: ["../wit/wasi-nn.wit", "wit/provider.wit"],
    world: "whisper-edge:nn-provider/provider",
});

use exports::wasi::nn::errors::{self, ErrorCode};
use exports::wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};
use exports::wasi::nn::inference::{self, NamedTensor};
use exports::wasi::nn::tensor::{self, TensorType};

struct Provider;

export!(Provider);

impl Guest for Provider {
    fn wizer_initialize() {
        crate::init::initialize();
    }
}

// ---- errors

pub struct NnError {
    code: ErrorCode,
    message: String,
}

fn error(code: ErrorCode, message: impl Into<String>) -> errors::Error {
    errors::Error::new(NnError { code, message: message.into() })
}

fn from_convention(e: nn_context::Error) -> errors::Error {
    let code = match e.kind {
        ErrorKind::InvalidArgument => ErrorCode::InvalidArgument,
        ErrorKind::UnsupportedType => ErrorCode::InvalidArgument,
        ErrorKind::Runtime => ErrorCode::RuntimeError,
    };
    error(code, e.message)
}

impl errors::Guest for Provider {
    type Error = NnError;
}

impl errors::GuestError for NnError {
    fn code(&self) -> ErrorCode {
        self.code
    }
    fn data(&self) -> String {
        self.message.clone()
    }
}

// ---- tensors

fn dtype(ty: TensorType) -> Dtype {
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

fn tensor_type(ty: Dtype) -> TensorType {
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

pub enum NnTensor {
    /// From the guest's constructor.
    Bytes(nn_context::Tensor),
    /// An output of a `compute`.
    Value(TValue),
}

impl NnTensor {
    fn described(&self) -> (Dtype, Vec<u32>) {
        match self {
            NnTensor::Bytes(t) => (t.ty, t.dims.clone()),
            NnTensor::Value(value) => engine::describe(value),
        }
    }
}

impl tensor::Guest for Provider {
    type Tensor = NnTensor;
}

impl tensor::GuestTensor for NnTensor {
    fn new(dimensions: Vec<u32>, ty: TensorType, data: Vec<u8>) -> Self {
        NnTensor::Bytes(nn_context::Tensor { dims: dimensions, ty: dtype(ty), data })
    }
    fn dimensions(&self) -> Vec<u32> {
        self.described().1
    }
    fn ty(&self) -> TensorType {
        tensor_type(self.described().0)
    }
    fn data(&self) -> Vec<u8> {
        match self {
            NnTensor::Bytes(t) => t.data.clone(),
            // Only dtypes the convention exchanges ever come out of a compute.
            NnTensor::Value(value) => engine::read(value).map(|t| t.data).unwrap_or_default(),
        }
    }
}

// ---- inference

pub struct NnContext(RefCell<Context<TractRunner>>);

impl inference::Guest for Provider {
    type GraphExecutionContext = NnContext;
}

impl inference::GuestGraphExecutionContext for NnContext {
    fn compute(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, errors::Error> {
        let inputs = inputs
            .into_iter()
            .map(|(name, t)| {
                let input = match t.into_inner::<NnTensor>() {
                    NnTensor::Bytes(t) => Input::Tensor(t),
                    NnTensor::Value(value) => Input::Value(value),
                };
                (name, input)
            })
            .collect();
        let outputs = self.0.borrow_mut().compute(inputs).map_err(from_convention)?;
        Ok(outputs.into_iter().map(|(name, value)| (name, tensor::Tensor::new(NnTensor::Value(value)))).collect())
    }
}

// ---- graphs

pub struct NnGraph(Arc<TractGraph>);

impl graph::Guest for Provider {
    type Graph = NnGraph;

    fn load(builder: Vec<Vec<u8>>, encoding: GraphEncoding, target: ExecutionTarget) -> Result<graph::Graph, errors::Error> {
        if encoding != GraphEncoding::Onnx && encoding != GraphEncoding::Autodetect {
            return Err(error(ErrorCode::InvalidEncoding, format!("this provider runs ONNX graphs, not {encoding:?}")));
        }
        if target != ExecutionTarget::Cpu {
            return Err(error(ErrorCode::UnsupportedOperation, format!("this provider runs on the CPU, not {target:?}")));
        }
        let [bytes] = builder.as_slice() else {
            return Err(error(ErrorCode::InvalidArgument, format!("an ONNX graph is one builder, got {}", builder.len())));
        };
        let loaded = TractGraph::load(bytes, &Pins::default()).map_err(|e| error(ErrorCode::InvalidEncoding, e))?;
        Ok(graph::Graph::new(NnGraph(Arc::new(loaded))))
    }

    fn load_by_name(name: String) -> Result<graph::Graph, errors::Error> {
        let Some(registry) = REGISTRY.get() else {
            return Err(error(ErrorCode::NotFound, format!("no graph `{name}`: this provider was not pre-initialised with any")));
        };
        match registry.get(&name) {
            Some(g) => Ok(graph::Graph::new(NnGraph(g.clone()))),
            None => {
                let known: Vec<&str> = registry.names().collect();
                Err(error(ErrorCode::NotFound, format!("no graph `{name}`; this provider has {known:?}")))
            }
        }
    }
}

impl graph::GuestGraph for NnGraph {
    fn init_execution_context(&self) -> Result<inference::GraphExecutionContext, errors::Error> {
        let ctx = Context::new(TractRunner(self.0.clone()));
        Ok(inference::GraphExecutionContext::new(NnContext(RefCell::new(ctx))))
    }
}
