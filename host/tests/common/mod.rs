//! Shared test set-up: the ONNX Runtime library, the generated test graphs, one backend per
//! test process (ONNX Runtime's environment is process-wide).
//!
//! Tests skip (with a message) when ONNX Runtime or the Python `onnx` package is missing, and
//! fail instead when `CI` is set.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use whisper_host::{GraphLoader, OrtBackend, OrtOptions, Target};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// `Err(reason)` becomes a skip, or a failure under CI.
pub fn require<T>(what: Result<T, String>) -> Option<T> {
    match what {
        Ok(v) => Some(v),
        Err(reason) if std::env::var_os("CI").is_some() => panic!("{reason}"),
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            None
        }
    }
}

/// ORT_DYLIB_PATH, else the library of the repository's venv (scripts/setup-python.sh).
pub fn ort_library() -> Result<PathBuf, String> {
    env_or_venv_library("ORT_DYLIB_PATH", "onnxruntime/capi", "libonnxruntime.so.")
        .ok_or_else(|| "no ONNX Runtime library: set ORT_DYLIB_PATH or run scripts/setup-python.sh".into())
}

/// `$var`, else the first `<dir>/<prefix>*` in the site-packages of the repository's venv.
fn env_or_venv_library(var: &str, dir: &str, prefix: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let lib = repo_root().join(".venv/lib");
    std::fs::read_dir(&lib).ok()?.filter_map(Result::ok).find_map(|python| {
        let dir = python.path().join("site-packages").join(dir);
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
    })
}

pub fn python() -> PathBuf {
    std::env::var_os("PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// Generates the test graphs once; returns the models dir (holding the model `test`).
pub fn test_models_dir() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("test-graphs-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_test_graphs.py");
        let output = Command::new(python())
            .arg(&script)
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
        if !output.status.success() {
            return Err(format!(
                "make_test_graphs.py failed (needs the `onnx` package): {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(dir)
    })
    .clone()
}

/// The process's ONNX Runtime backend (2 threads).
pub fn backend() -> Result<&'static OrtBackend, String> {
    static BACKEND: OnceLock<Result<OrtBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let library = ort_library()?;
            OrtBackend::new(&library, OrtOptions { threads: 2, ..OrtOptions::default() }).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// OPENVINO_LIB, else the OpenVINO C library of the repository's venv (scripts/setup-python.sh).
pub fn openvino_library() -> Result<PathBuf, String> {
    env_or_venv_library("OPENVINO_LIB", "openvino/libs", "libopenvino_c.so.")
        .ok_or_else(|| "no OpenVINO library: set OPENVINO_LIB or run scripts/setup-python.sh".into())
}

/// The process's OpenVINO backend (2 threads).
#[cfg(feature = "openvino")]
pub fn openvino_backend() -> Result<&'static whisper_host::nn::openvino::OpenvinoBackend, String> {
    static BACKEND: OnceLock<Result<whisper_host::nn::openvino::OpenvinoBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let library = openvino_library()?;
            whisper_host::nn::openvino::OpenvinoBackend::new(Target::Cpu, 2, Some(&library))
                .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// tract, the engine of the pure-wasm provider (provider/), here natively through the same
/// convention adapter as our native backends: the conformance cases hold for it too.
pub struct TractLoader;

struct TractBackendGraph(std::sync::Arc<wasi_nn_tract::TractGraph>);

impl wasmtime_wasi_nn::backend::BackendGraph for TractBackendGraph {
    fn init_execution_context(&self) -> Result<wasmtime_wasi_nn::ExecutionContext, wasmtime_wasi_nn::backend::BackendError> {
        Ok(whisper_host::nn::convention::into_execution_context(wasi_nn_tract::TractRunner(self.0.clone())))
    }
}

impl GraphLoader for TractLoader {
    fn load_file(&self, path: &Path) -> anyhow::Result<(wasmtime_wasi_nn::Graph, whisper_host::GraphInfo)> {
        let bytes = std::fs::read(path)?;
        let graph = wasi_nn_tract::TractGraph::load(&bytes, &Default::default()).map_err(anyhow::Error::msg)?;
        let info = graph.info().clone();
        let boxed: Box<dyn wasmtime_wasi_nn::backend::BackendGraph> = Box::new(TractBackendGraph(std::sync::Arc::new(graph)));
        Ok((boxed.into(), info))
    }
}

/// Every backend this build has, by name: ONNX Runtime, OpenVINO (feature `openvino`), and
/// tract (the pure-wasm provider's engine).
pub fn backends() -> Vec<(&'static str, &'static dyn GraphLoader)> {
    let mut all: Vec<(&'static str, &'static dyn GraphLoader)> = vec![("tract", &TractLoader)];
    if let Some(ort) = require(backend()) {
        all.push(("onnx", ort));
    }
    #[cfg(feature = "openvino")]
    if let Some(openvino) = require(openvino_backend()) {
        all.push(("openvino", openvino));
    }
    all
}
