//! # whisper-host
//!
//! A Wasmtime host for a WebAssembly HTTP component (the Whisper service in `src/`): it serves
//! HTTP/1.1 with hyper, runs each request in a fresh instance of the component (WASI p2 +
//! `wasi:http` p2), and gives the component `wasi:nn@0.2.0-rc-2024-10-28` over graphs it loaded
//! once at start-up, run by ONNX Runtime ([`OrtBackend`]) or, with the `openvino` feature,
//! OpenVINO.
//!
//! The pieces are public so other Wasmtime embedders can reuse them:
//! - [`add_to_linker`]: WASI p2, wasi-http and wasi-nn into a component `Linker`;
//! - [`OrtBackend`]: a wasmtime-wasi-nn backend (`BackendInner`/`BackendGraph`/
//!   `BackendExecutionContext`) over ONNX Runtime;
//! - [`load_models`] and [`Models`]: the shared graph registry, and per-request views of it
//!   that count computes, time and bytes ([`NnStats`]);
//! - [`Server`] and [`serve`]: the HTTP server with its limits;
//! - [`Frontend`] and [`serve_frontend`]: `/health`, `/ready` and `/metrics` ([`Metrics`]),
//!   answered by the host, with a listener that serves while the component and models load.
//!
//! ## The execution-context convention
//!
//! wasi-nn's `compute(inputs) -> outputs` says nothing about state between calls. Both backends
//! of this host give an execution context (`graph.init-execution-context()`) this meaning:
//!
//! 1. **Inputs persist.** Every input given to `compute` is stored in the execution context. A
//!    later `compute` may leave it out and the stored value is used; giving it again replaces it.
//!    The decoder's cross-attention K/V (`cross_k<i>`/`cross_v<i>`, 37 MB for `base`) therefore
//!    crosses the boundary once per 30 s window, and a per-token step sends only `tokens` (and
//!    `cache_index` when it changes).
//!    A `compute` whose inputs fail validation stores none of them.
//! 2. **Carried state.** For every graph output named `present<S>` for which the graph has an
//!    input `past<S>` (same suffix `S`, possibly empty), the output is not returned to the guest:
//!    it becomes the stored `past<S>` of the next `compute`, without leaving the backend (with
//!    ONNX Runtime, the output value itself is reused). The Whisper decoder has one such pair per
//!    layer and cache half (`present_k0` → `past_k0`, `present_v0` → `past_v0`, …). The guest
//!    starts a new sequence by sending every `past<S>` again, e.g. empty tensors of shape
//!    `[1, H, dh, 0]` (K) and `[1, H, 0, dh]` (V).
//! 3. **All other outputs are returned**, each with its own dtype and shape.
//!
//! Supported dtypes are f32, f16, i64, i32 and u8, in both directions. A request the graph cannot
//! take (another dtype such as `FP64`/`BF16`, a wrong rank or fixed dimension, a data length that
//! does not match the shape, an unknown input name, an input never given) is a wasi-nn
//! `runtime-error`, never a host panic; the details are in the host log.
//!
//! The guest can only `load-by-name` (`<model>/<graph>`, e.g. `base/decoder`); `load` from bytes
//! has no backend and fails with `invalid-encoding`.

pub mod access;
pub mod config;
pub mod cors;
pub mod frontend;
pub mod limits;
pub mod linger;
pub mod listener;
pub mod metrics;
pub mod nn;
pub mod server;
pub mod state;
pub mod tls;

pub use crate::access::{Access, ClientLimits};
pub use crate::config::Cli;
pub use crate::frontend::{Frontend, Readiness};
pub use crate::listener::{serve_frontend, serve_frontend_tls, Stopped};
pub use crate::limits::Limits;
pub use crate::metrics::Metrics;
pub use crate::nn::ort::{find_ort_library, OptLevel, OrtBackend, OrtOptions, Target};
pub use crate::nn::{load_models, require_graphs, GraphInfo, GraphLoader, LoadedGraph, Models, NnStats};
pub use crate::server::{build_engine, check_component_file, load_component, proxy_pre, serve, EngineOptions, Server};
pub use crate::state::{add_to_linker, GuestConfig, RequestState, WasiNnHost};

use std::path::Path;

/// Makes the backend chosen on the command line and loads the chosen models with it.
pub fn load_backend_and_models(cli: &Cli) -> anyhow::Result<Models> {
    let threads = cli.threads.unwrap_or_else(|| OrtOptions::default().threads);
    let loader: Box<dyn GraphLoader> = match cli.backend {
        config::BackendKind::Onnx => {
            let library = find_ort_library(cli.ort_lib.as_deref())?;
            let options = OrtOptions {
                threads,
                opt_level: cli.graph_opt,
                target: cli.target,
                arena: cli.ort_arena,
                config: cli.ort_config.clone(),
                serial: cli.serial_graphs.iter().filter(|s| !s.is_empty()).cloned().collect(),
            };
            let backend = OrtBackend::new(&library, options)?;
            tracing::info!(library = %library.display(), threads, target = ?cli.target, "ONNX Runtime ready");
            Box::new(backend)
        }
        #[cfg(feature = "openvino")]
        config::BackendKind::Openvino => {
            let library = nn::openvino::find_openvino_library(cli.openvino_lib.as_deref())?;
            let backend = nn::openvino::OpenvinoBackend::new(cli.target, threads, library.as_deref())?;
            tracing::info!(library = ?library, threads, target = ?cli.target, "OpenVINO ready");
            Box::new(backend)
        }
        #[cfg(not(feature = "openvino"))]
        config::BackendKind::Openvino => anyhow::bail!(
            "--backend openvino: this binary was built without OpenVINO; rebuild with \
             `cargo build --release -p whisper-host --features openvino`"
        ),
    };
    let models = load_models(loader.as_ref(), Path::new(&cli.models), &cli.model)?;
    nn::require_graphs(&models, Path::new(&cli.models), &cli.model, &cli.graphs)?;
    Ok(models)
}
