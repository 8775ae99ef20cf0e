//! Embedding our host library: ONNX Runtime as the wasi-nn backend, the models loaded once, the
//! Whisper component (the app alone, which imports wasi:nn) served over HTTP — the README's
//! "Library use" in one runnable file.
//!
//! ```text
//! ORT_DYLIB_PATH=.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.22.1 \
//!   cargo run --release -p whisper-host --example embed_host -- \
//!   target/wasm32-wasip2/release/whisper_component.wasm models/build base 127.0.0.1:8080
//! ```

use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [component, models_dir, model, addr] = args.as_slice() else {
        eprintln!("usage: embed_host <component.wasm> <models dir> <model> <host:port>");
        std::process::exit(2);
    };
    let backend = whisper_host::OrtBackend::new(&whisper_host::find_ort_library(None)?, Default::default())?;
    let models = Arc::new(whisper_host::load_models(&backend, models_dir.as_ref(), std::slice::from_ref(model))?);
    let engine = whisper_host::build_engine(&Default::default())?;
    let component = whisper_host::load_component(&engine, component.as_ref())?;
    let env = vec![("WHISPER_MODEL".to_string(), model.clone())];
    let limits = whisper_host::Limits::default();
    let server = whisper_host::Server::new(whisper_host::proxy_pre(&engine, &component)?, models, env, limits);
    let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
    println!("serving {model} on http://{addr}");
    whisper_host::serve(listener, server, std::future::pending()).await
}
