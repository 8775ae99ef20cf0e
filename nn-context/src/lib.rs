//! The execution-context convention of our wasi-nn backends, implemented once.
//!
//! Every backend we ship (ONNX Runtime and OpenVINO in the native host, tract in the pure-wasm
//! provider) gives a wasi-nn `graph-execution-context` the same meaning:
//!
//! 1. **Inputs persist.** Every input given to `compute` is stored in the context; a later
//!    `compute` may leave it out and the stored value is used. Giving it again replaces it. A
//!    `compute` with an invalid input stores none of its inputs.
//! 2. **Carried state.** For every output `present<S>` for which the graph has an input
//!    `past<S>` (same suffix, possibly empty), the output is not returned: it becomes the stored
//!    `past<S>` of the next `compute`.
//! 3. **All other outputs are returned**, each with its own dtype and shape.
//!
//! Anything the graph cannot take (f64/bf16, another dtype than declared, wrong rank or fixed
//! dimension, data length ≠ shape, unknown input, an input never given, the same input twice) is
//! an [`Error`], never a panic.
//!
//! A backend fills in [`Runner`] (turn checked bytes into its own value, run the graph on one
//! value per input, describe a value); [`Context`] does the rest. This crate knows nothing of
//! Wasmtime or of any engine, so the host and the wasm provider cannot drift apart.

mod check;
mod context;

pub use check::{carried_pairs, check_input, dtype_name, element_size, Dtype, GraphInfo, IoInfo};
pub use context::{Context, Input, Runner};

// wasi-nn tensor data is little-endian; the backends hand the bytes to their engines as they are.
#[cfg(target_endian = "big")]
compile_error!("nn-context passes wasi-nn tensor bytes through unchanged and needs a little-endian target");

/// A tensor as wasi-nn carries it: dimensions, element type, little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<u32>,
    pub ty: Dtype,
    pub data: Vec<u8>,
}

/// What went wrong, in wasi-nn's terms (`errors.error-code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A tensor the graph cannot take: wrong name, shape, length, or an input never given.
    InvalidArgument,
    /// A dtype this convention does not exchange (f64, bf16) or another than the graph declares.
    UnsupportedType,
    /// The engine failed while running the graph.
    Runtime,
}

/// An error with a message meant for a person (the host logs it; the wasm provider returns it
/// as the wasi-nn error's `data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::InvalidArgument, message: message.into() }
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::UnsupportedType, message: message.into() }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Runtime, message: message.into() }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
