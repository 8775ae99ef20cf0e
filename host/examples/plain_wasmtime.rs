//! Another Wasmtime embedder serving the composed component (`make edge`) with nothing but
//! `wasmtime`, `wasmtime-wasi` and `wasmtime-wasi-http`: no wasi-nn, no whisper-host code. The
//! composed component carries its own wasi:nn (the pure-wasm provider with the model inside), so
//! this is all any wasi-http embedder needs.
//!
//! ```text
//! cargo run --release -p whisper-host --example plain_wasmtime -- target/edge/whisper-edge-base.wasm 127.0.0.1:8080
//! curl -F file=@jfk.wav 127.0.0.1:8080
//! ```
//! The component reads its configuration from the environment: this passes `WHISPER_MODEL`
//! through when set (the model inside the file otherwise defaults to `base`).

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use std::future::Future;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Per-request store data: WASI, wasi-http and their resource table. Nothing else.
struct Request {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: NoOutbound,
}

/// The component makes no outgoing requests; refuse any (this crate is built without a client).
struct NoOutbound;

type Sent = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>)>;

impl WasiHttpHooks for NoOutbound {
    fn send_request(
        &mut self,
        _: http::Request<WasiBody>,
        _: Option<wasmtime_wasi_http::RequestOptions>,
        _: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl WasiView for Request {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Request {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

#[tokio::main]
async fn main() -> wasmtime::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: plain_wasmtime <composed component .wasm> <host:port>");
        std::process::exit(2);
    };
    let engine = Engine::new(&Config::new())?;
    let component = Component::from_file(&engine, &path)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let pre = Arc::new(ProxyPre::new(linker.instantiate_pre(&component)?)?);
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("WHISPER_")).collect();

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving {path} on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let (pre, env) = (pre.clone(), env.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(pre.clone(), env.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// One fresh instance per request, as `wasmtime serve` and Spin do.
async fn handle(
    pre: Arc<ProxyPre<Request>>,
    env: Vec<(String, String)>,
    req: hyper::Request<Incoming>,
) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
    let mut wasi = WasiCtx::builder();
    wasi.envs(&env);
    let state = Request {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        hooks: NoOutbound,
    };
    let mut store = Store::new(pre.engine(), state);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let task = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(wasmtime::Error::msg(format!("the component answered with an error: {code:?}"))),
        // The guest never set a response: report its trap.
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            _ => Err(wasmtime::Error::msg("the component set no response")),
        },
    }
}
