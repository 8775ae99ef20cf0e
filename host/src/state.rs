//! Per-request store state (`{wasi, http, nn, table, limits}`) and the linker setup.
//!
//! Each request gets a fresh [`RequestState`] in a fresh `Store`: WASI with no preopened
//! directories, no sockets, no inherited environment (only the variables the host was told to
//! pass), wasi-http whose outgoing requests are all denied, and wasi-nn with only the graphs of
//! the shared registry (no `load` from guest bytes).

use crate::nn::{Models, NnStats};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wasmtime_wasi_nn::wit::{WasiNnCtx, WasiNnView};

/// Store data types that expose a wasi-nn context (the third piece [`add_to_linker`] needs next
/// to [`WasiView`] and [`WasiHttpView`]).
pub trait WasiNnHost {
    fn wasi_nn(&mut self) -> WasiNnView<'_>;
}

/// Adds everything a Rust `wasm32-wasip2` HTTP component (e.g. spin-sdk 5's `#[http_component]`)
/// imports: the full WASI p2 set (`wasi:cli`, `wasi:clocks`, `wasi:filesystem`, `wasi:io`,
/// `wasi:random`, `wasi:sockets`), `wasi:http` (p2) and `wasi:nn@0.2.0-rc-2024-10-28`.
pub fn add_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiView + WasiHttpView + WasiNnHost + 'static,
{
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wasmtime_wasi_nn::wit::add_to_linker(linker, T::wasi_nn)?;
    Ok(())
}

/// What a request's guest may see and use.
#[derive(Clone, Debug, Default)]
pub struct GuestConfig {
    /// The guest's whole environment.
    pub env: Vec<(String, String)>,
    /// Cap on the store's linear memories (bytes, all memories together).
    pub max_memory_bytes: usize,
}

/// The `T` of each request's `Store<T>`.
pub struct RequestState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub nn: WasiNnCtx,
    pub table: ResourceTable,
    pub limits: Limiter,
    pub hooks: DenyOutbound,
    /// wasi-nn counters of this request.
    pub stats: Arc<NnStats>,
}

impl RequestState {
    pub fn new(config: &GuestConfig, models: &Models) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.envs(&config.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let stats = NnStats::new();
        let registry = models.for_request(&stats);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            // No backends: the guest cannot `load` graphs from bytes, only `load-by-name`.
            nn: WasiNnCtx::new([], registry.into()),
            table: ResourceTable::new(),
            limits: Limiter::new(config.max_memory_bytes),
            hooks: DenyOutbound,
            stats,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl WasiNnHost for RequestState {
    fn wasi_nn(&mut self) -> WasiNnView<'_> {
        WasiNnView::new(&mut self.table, &mut self.nn)
    }
}

/// wasi-http hooks that refuse every outgoing request (`HTTP-request-denied`). The crate is built
/// without its default client, so nothing else could send one.
pub struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        tracing::warn!(uri = %request.uri(), "denied an outgoing HTTP request from the guest");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// [`StoreLimits`] that also remembers whether it refused to grow a memory, so a trap that
/// follows can be reported as "memory limit exceeded", and the largest memory it granted.
pub struct Limiter {
    inner: StoreLimits,
    denied: AtomicBool,
    peak: usize,
}

impl Limiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new().memory_size(max_memory_bytes).build();
        Self { inner, denied: AtomicBool::new(false), peak: 0 }
    }

    /// The largest size (bytes) a linear memory of the instance was allowed to grow to.
    pub fn peak_memory(&self) -> usize {
        self.peak
    }

    /// `true` once a memory growth was refused.
    pub fn hit(&self) -> bool {
        self.denied.load(Ordering::Relaxed)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak = self.peak.max(desired);
        } else {
            self.denied.store(true, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
