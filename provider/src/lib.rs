//! A pure-wasm wasi:nn provider: `wasi:nn@0.2.0-rc-2024-10-28` over tract, for hosts that have
//! no wasi:nn (Spin, stock `wasmtime serve`, edge platforms).
//!
//! Built for wasm32-wasip2 as a component, pre-initialised with `wasmtime wizer` so the graphs
//! are already parsed, optimised and planned in its linear memory ([`init`]), then plugged into
//! the Whisper component with `wac plug`: one self-contained component per model that imports
//! only wasi:cli, io, clocks, random and http. The Makefile's `edge` target does all of it.
//!
//! It follows our execution-context convention (crate `nn-context`: inputs persist,
//! `present<S>` is carried into `past<S>` inside the provider, other outputs returned) and
//! answers every bad request with a wasi-nn error, never a trap. `load-by-name` takes the names
//! our host registers (`<model>/<graph>`); `load` takes the bytes of an ONNX graph.
//!
//! [`engine`] and [`registry`] build natively too, so the host's backend conformance cases run
//! against tract as well (host/tests/backend.rs).

pub mod engine;
pub mod registry;

#[cfg(target_arch = "wasm32")]
mod export;
#[cfg(target_arch = "wasm32")]
mod init;
#[cfg(target_arch = "wasm32")]
mod no_fs;

pub use engine::{Pins, TractGraph, TractRunner};
pub use registry::Registry;
